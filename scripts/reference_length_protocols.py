"""Folder protocols that differ only in how much reference speech each target voice gets.

    python scripts/reference_length_protocols.py --root ../shared/real-speech --out data/protocols/reflen \
        --seconds 3 10 30 --sources-per-speaker 2 --trials 42

For every held-out real speaker (LibriSpeech test-*, VCTK) the first `--sources-per-speaker`
clips become sources (in a folder per speaker, so a source is never paired with its own voice)
and the speaker's other clips, trimmed and joined, are cut to each length in `--seconds` as that
voice's single reference clip. One protocol per length is written (`OUT/protocol-<S>s.json`),
all with the same (source, voice) pairs, so similarity and WER can be read against reference
length (kNN-VC's weakness is short references).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eval.folder_protocol import build_folder_protocol  # noqa: E402
from vc.audio import Audio, prepare_speech  # noqa: E402
from vc.data import read_corpora  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True, help="a real-speech folder (librispeech/test-*, vctk/)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--seconds", type=float, nargs="+", default=[3.0, 10.0, 30.0])
    parser.add_argument("--sources-per-speaker", type=int, default=2)
    parser.add_argument("--trials", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    root, out = Path(args.root), Path(args.out)
    corpora = sorted(root.glob("librispeech/test-*")) + [root / "vctk"]
    utterances = read_corpora(corpora, [c.name for c in corpora])
    by_speaker: dict[str, list] = {}
    for utt in sorted(utterances, key=lambda u: str(u.path)):
        by_speaker.setdefault(utt.speaker.split(":")[-1], []).append(utt)
    texts = []
    longest = max(args.seconds)
    for speaker, utts in sorted(by_speaker.items()):
        sources, rest = utts[:args.sources_per_speaker], utts[args.sources_per_speaker:]
        for utt in sources:
            target = out / "sources" / speaker / f"{utt.path.stem}.wav"
            target.parent.mkdir(parents=True, exist_ok=True)
            prepare_speech(utt.path, 16000, trim=False, normalize=False).save(target)
            if utt.text:
                texts.append(f"{utt.path.stem}\t{utt.text}")
        joined = np.concatenate([prepare_speech(u.path, 16000).samples for u in rest])
        if len(joined) < longest * 16000:
            print(f"warning: {speaker} has only {len(joined) / 16000:.1f} s of reference speech", file=sys.stderr)
        for seconds in args.seconds:
            clip = Audio(joined[:int(seconds * 16000)], 16000)
            clip.save(out / f"references-{seconds:g}s" / f"{speaker}.wav")
    (out / "texts.tsv").write_text("\n".join(texts) + "\n", encoding="utf-8")
    for seconds in args.seconds:
        protocol = build_folder_protocol(out / "sources", out / f"references-{seconds:g}s", texts=out / "texts.tsv",
                                         trials=args.trials, seed=args.seed)
        path = protocol.save(out / f"protocol-{seconds:g}s.json")
        print(f"wrote {path}: {len(protocol)} trials, {seconds:g} s of reference per voice")
    return 0


if __name__ == "__main__":
    sys.exit(main())

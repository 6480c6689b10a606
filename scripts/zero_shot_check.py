"""Zero-shot conversion check on real speakers no model has heard.

For every ordered pair of held-out speakers (LibriSpeech test-other and VCTK p225/p226) it
converts one utterance of the source speaker using two reference clips of the target, then
compares speaker-encoder embeddings against the target speaker's *other* utterances (not the
references), so a model cannot score by copying its reference:

    target_cos   cosine(converted, target)      should rise above...
    source_cos   cosine(unconverted source, target)   ...this, the no-conversion baseline
    resynth_cos  cosine(Griffin-Lim resynthesis of the source, target)  vocoder-only baseline
    keeps_source cosine(converted, source speaker): how much of the source voice is left

    python scripts/zero_shot_check.py runs/autovc-small runs/vqvc-small [--vocoder griffinlim]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vc.audio import prepare_speech  # noqa: E402
from vc.pipeline import VoiceConverter  # noqa: E402
from vc.speaker import SpeakerEncoder, cosine  # noqa: E402


def held_out_speakers(root: Path) -> dict[str, list[Path]]:
    speakers = {}
    for folder in sorted((root / "librispeech" / "test-other").iterdir()):
        if folder.is_dir():
            speakers[f"libri-{folder.name}"] = sorted(folder.glob("*.flac"))
    for name in ("p225", "p226"):
        speakers[f"vctk-{name}"] = sorted((root / "vctk" / name).glob("*.wav"))
    return speakers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="model names, folders or training runs")
    parser.add_argument("--real-speech", default=str(REPO.parent / "shared" / "real-speech"))
    parser.add_argument("--vocoder", default="griffinlim")
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args()

    encoder = SpeakerEncoder.pretrained()
    speakers = held_out_speakers(Path(args.real_speech))
    # Per speaker: utterance 0 is the source, 1-2 the references, 3-7 the judging set.
    judge = {s: encoder.embed_batch(files[3:8]).mean(0) for s, files in speakers.items()}
    judge = {s: v / np.linalg.norm(v) for s, v in judge.items()}
    pairs = [(s, t) for s in speakers for t in speakers if s != t]
    results = {}
    for name in args.models:
        converter = VoiceConverter.from_pretrained(name, vocoder=args.vocoder)
        rows = {"target_cos": [], "source_cos": [], "resynth_cos": [], "keeps_source": []}
        started, audio_seconds = time.perf_counter(), 0.0
        for source, target in pairs:
            src_file = speakers[source][0]
            out = converter.convert(src_file, speakers[target][1:3])
            audio_seconds += out.duration
            converted = encoder.embed(out)
            rows["target_cos"].append(cosine(converted, judge[target]))
            rows["keeps_source"].append(cosine(converted, judge[source]))
            rows["source_cos"].append(cosine(encoder.embed(src_file), judge[target]))
        elapsed = time.perf_counter() - started
        for source in speakers:  # vocoder-only: the source through mel + vocoder
            clip = prepare_speech(speakers[source][0], converter.sample_rate)
            mel = converter.mel(clip.to_tensor())
            resynth = converter.vocode(mel)
            for target in speakers:
                if target != source:
                    rows["resynth_cos"].append(cosine(encoder.embed(resynth), judge[target]))
        summary = {k: round(float(np.mean(v)), 4) for k, v in rows.items()}
        summary["wins"] = int(np.sum(np.array(rows["target_cos"]) > np.array(rows["source_cos"])))
        summary["pairs"] = len(pairs)
        summary["audio_s_per_compute_s"] = round(audio_seconds / elapsed, 2)
        results[name] = summary
        print(f"{name}: " + ", ".join(f"{k}={v}" for k, v in summary.items()), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A development cloning protocol made only of training speakers, for choosing cloner settings.

    python scripts/dev_clone_protocol.py [--root ../shared/real-speech] [--out runs/dev-clone.json]

Settings (adaptation steps, what learns, ...) are chosen here, never on `reports/clone-50`:
LibriSpeech train-clean-100 speakers (one clip each in the corpus) are made into voices the
synthesizer has not heard by shifting pitch and formants by +-250 cents, a shift none of the
training copies has (they use 200, 300, 400, 500); each clip's two halves are the two reference
clips. The sentences are LJSpeech's last 25, held out of every training list. No voice has
read them, so there is no `real` baseline; compare settings with one another.

With LJSpeech's short, plain sentences adapting to the reference costs no words here (quick 0.786
/ 9.1 % WER, adapted 0.821 / 9.1 %), while on the 62 held-out real trials it cost about 1.8
points (not significant in either run). `--texts data/aligned/librispeech-train.jsonl` (longer
literary sentences of the training transcripts, none read by the chosen voices) is closer to the
held-out texts; at 24 trials it showed a similar cost (quick 0.770 / 9.7 %, adapted 0.815 /
11.2 %, +1.5 points [-0.6, +3.8]), but at 96 (`--voices 24 --texts-per-voice 4`) none: quick
0.772 / 10.8 %, adapted 0.817 / 10.6 % (-0.2 [-1.5, +1.1], closer on 93 of 96), adapted with
the weights 30 % of the way (`interpolation=0.3`) 0.803 / 9.9 % (-0.9 [-2.0, +0.2]). Use
96 trials or more: 24 cannot resolve a point of WER.
"""
from __future__ import annotations

import argparse
import csv
import json
import random
import sys
from pathlib import Path

import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from eval.clone_protocol import CloneProtocol, CloneTrial, CloneVoice  # noqa: E402
from vc.data.shifted_speakers import shift_clip  # noqa: E402

LJ_HELD_OUT = 25  # build_phonetic_data.sh holds LJSpeech's last 25 clips out of training
SHIFTS = (250.0, -250.0)


def split_in_halves(clip: Path, folder: Path) -> list[Path]:
    """The clip's first and second halves as two files (the protocol wants two references)."""
    samples, rate = sf.read(clip, dtype="float32")
    half = len(samples) // 2
    paths = [folder / f"{clip.stem}-a.wav", folder / f"{clip.stem}-b.wav"]
    for path, part in zip(paths, (samples[:half], samples[half:])):
        if not path.exists():
            sf.write(path, part, rate)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="../shared/real-speech")
    parser.add_argument("--out", default="runs/dev-clone.json")
    parser.add_argument("--folder", default="data/protocols/dev-clone", help="where the shifted clips go")
    parser.add_argument("--voices", type=int, default=12)
    parser.add_argument("--texts-per-voice", type=int, default=2)
    parser.add_argument("--min-seconds", type=float, default=10.0, help="shortest clip used (before halving)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--texts", metavar="M.jsonl",
                        help="take the sentences from this manifest (its `text` fields of 8-25 words, "
                             "none spoken by a chosen voice) instead of LJSpeech's held-out ones, e.g. "
                             "data/aligned/librispeech-train.jsonl for longer, harder sentences")
    args = parser.parse_args()

    root, folder = Path(args.root), Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    clips = [c for c in sorted((root / "librispeech" / "train-clean-100").glob("*.flac"))
             if sf.info(c).duration >= args.min_seconds]
    rng = random.Random(args.seed)
    chosen = rng.sample(clips, min(args.voices, len(clips)))
    with open(root / "ljspeech" / "metadata.csv", encoding="utf-8") as f:
        rows = [r for r in csv.reader(f, delimiter="|", quoting=csv.QUOTE_NONE)]
    texts = [r[2] if len(r) > 2 and r[2] else r[1] for r in rows][-LJ_HELD_OUT:]
    text_source = "ljspeech-held-out"
    if args.texts:
        spoken = {c.stem for c in chosen}
        with open(args.texts, encoding="utf-8") as f:
            items = [json.loads(line) for line in f if line.strip()]
        texts = [i["text"] for i in items if 8 <= len(i["text"].split()) <= 25
                 and Path(i.get("path", "")).stem.split("+")[0] not in spoken]
        text_source = Path(args.texts).stem
    rng.shuffle(texts)

    voices, trials = {}, []
    for i, clip in enumerate(chosen):
        cents = SHIFTS[i % len(SHIFTS)]
        shifted = folder / f"{clip.stem}{cents:+.0f}c.wav"
        if not shifted.exists():
            shift_clip(clip, shifted, cents)
        references = split_in_halves(shifted, folder)
        name = f"librispeech-train:{clip.stem.split('-')[0]}{cents:+.0f}c"
        voices[name] = CloneVoice("real", "librispeech-train-shifted", tuple(references))
        for k in range(args.texts_per_voice):
            text = texts[(i * args.texts_per_voice + k) % len(texts)]
            trials.append(CloneTrial(f"d{len(trials) + 1:02d}", "real", name, text, tuple(references),
                                     text_source=text_source))
    metadata = {"builder": Path(__file__).name, "seed": args.seed, "trials": len(trials),
                "speakers": len(voices), "shifts_cents": list(SHIFTS),
                "note": "training speakers shifted; for choosing settings, not for reports"}
    path = CloneProtocol(trials, voices, metadata).save(args.out)
    print(f"wrote {path}: {len(trials)} trials, {len(voices)} shifted training voices")


if __name__ == "__main__":
    main()

"""A development protocol made only of training speakers, for choosing settings.

    python scripts/dev_protocol.py [--root ../shared/real-speech] [--out runs/dev.json]

Settings (how strongly and how smoothly phones are matched, ...) are chosen here, never on the held-out
protocols of reports/: LJSpeech training clips (texts known) are converted into LibriSpeech
train-clean-100 speakers (one utterance of at least 11 s each, the reference). Every speaker
here was seen in training, so absolute figures run higher than on unseen voices; only the
comparison between settings is read.

With `--shift-cents C` the voices are those speakers' clips shifted in pitch and formants by +C
and -C cents in turn (`vc.data.shift_clip`), voices the converter never heard (it was not
trained on shifted copies): for settings that work on the reference itself, such as adaptation
(`--shift-cents 250 --out runs/dev-shifted.json`).
"""
from __future__ import annotations

import argparse
import random
import subprocess
import sys
from pathlib import Path

import soundfile as sf

LJ_HELD_OUT = 25  # build_phonetic_data.sh holds LJSpeech's last 25 clips out of training


def link_folder(folder: Path, clips: list[Path], per_speaker: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for clip in clips:
        target = folder / clip.stem.split("-")[0] / clip.name if per_speaker else folder / clip.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.symlink_to(clip.resolve())


def write_shifted(folder: Path, clips: list[Path], cents: float) -> None:
    """Each clip shifted by +cents and -cents in turn, in a folder per new voice."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from vc.data.shifted_speakers import shift_clip

    for i, clip in enumerate(clips):
        shift = cents if i % 2 == 0 else -cents
        speaker = f"{clip.stem.split('-')[0]}{shift:+.0f}c"
        target = folder / speaker / f"{clip.stem}{shift:+.0f}c.wav"
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            shift_clip(clip, target, shift)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="../shared/real-speech")
    parser.add_argument("--out", default="runs/dev.json")
    parser.add_argument("--folder", default="data/protocols/dev", help="where the source and voice links go")
    parser.add_argument("--voices", type=int, default=16)
    parser.add_argument("--sources", type=int, default=20)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shift-cents", type=float, default=0.0,
                        help="make the voices new by shifting them +C and -C cents in turn (0: as recorded)")
    args = parser.parse_args()

    root, folder = Path(args.root), Path(args.folder)
    rng = random.Random(f"voicelab-dev-{args.seed}")
    libri = sorted((root / "librispeech" / "train-clean-100").rglob("*.flac"))
    long = [p for p in libri if sf.info(str(p)).duration >= 11.0]
    lj = sorted((root / "ljspeech" / "wavs").glob("*.flac"))[:-LJ_HELD_OUT]
    if len(long) < args.voices or len(lj) < args.sources:
        sys.exit(f"{root} has {len(long)} long LibriSpeech clips and {len(lj)} LJSpeech training clips; "
                 f"asked for {args.voices} voices and {args.sources} sources")
    voice_clips = rng.sample(long, args.voices)
    if args.shift_cents:
        voices = folder / f"voices-shifted-{args.shift_cents:g}c"
        write_shifted(voices, voice_clips, args.shift_cents)
    else:
        voices = folder / "voices"
        link_folder(voices, voice_clips, per_speaker=True)
    link_folder(folder / "sources", rng.sample(lj, args.sources), per_speaker=False)
    subprocess.run([sys.executable, "-m", "eval", "folder-protocol", "--sources", str(folder / "sources"),
                    "--references", str(voices), "--texts", str(root / "ljspeech" / "metadata.csv"),
                    "--trials", str(args.trials), "--seed", str(args.seed), "--out", args.out], check=True)


if __name__ == "__main__":
    main()

"""Copy a training run's published weights into checkpoints/ (or anywhere), stored in float16.

    python scripts/ship_checkpoint.py runs/synth-small checkpoints/synth-small [--fp32]

The model card is carried over from the run (training data, steps, final losses); evaluation
figures are added afterwards by the evaluation harness.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vc.errors import VoicelabError  # noqa: E402
from vc.hub import load_model  # noqa: E402
from vc.pipeline import resolve_run_folder  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a training run folder (RUN/model) or a model folder")
    parser.add_argument("out", help="the destination folder, e.g. checkpoints/NAME")
    parser.add_argument("--fp32", action="store_true", help="keep float32 weights")
    args = parser.parse_args(argv)
    try:
        source = Path(resolve_run_folder(args.run))
        model = load_model(source)
        card = (source / "README.md").read_text() if (source / "README.md").is_file() else None
        folder = model.save_pretrained(args.out, card=card, dtype=None if args.fp32 else torch.float16)
    except (VoicelabError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    size = (folder / "model.safetensors").stat().st_size / 1e6
    print(f"wrote {folder} ({size:.1f} MB of weights)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

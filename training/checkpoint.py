"""Resume state: everything needed to continue a run exactly, written atomically.

The resume file holds plain tensors and numbers only (model, EMA, optimizer and scheduler
states, step, RNG), so it loads with `torch.load(weights_only=True)`. It lives apart from the
publishable weights (`RUN_DIR/model/`, written by `save_pretrained`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from vc.errors import CheckpointError

RESUME_NAME = "resume.pt"


def save_resume_state(run_dir: Path, state: dict[str, Any]) -> Path:
    """Write RUN_DIR/resume.pt via a temporary file and a rename, so a crash mid-write leaves
    the previous checkpoint intact."""
    path = Path(run_dir) / RESUME_NAME
    tmp = path.with_name(f".{RESUME_NAME}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_resume_state(run_dir: Path) -> dict[str, Any] | None:
    """The saved state of a run, or None when it has none yet."""
    path = Path(run_dir) / RESUME_NAME
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(f"the resume checkpoint '{path}' is damaged ({error}); delete it "
                              "to start the run again, or restore it from a backup") from None


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])

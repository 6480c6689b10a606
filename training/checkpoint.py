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
from vc.hub import describe_torch_load_error, non_finite_tensors, remove_stale_temporaries

RESUME_NAME = "resume.pt"


def save_resume_state(run_dir: Path, state: dict[str, Any]) -> Path:
    """Write RUN_DIR/resume.pt via a temporary file and a rename, so a crash mid-write leaves
    the previous checkpoint intact. Refuses a state holding NaN or infinite values, which
    would replace the last good checkpoint with one that cannot train."""
    bad = non_finite_tensors(state)
    if bad:
        raise CheckpointError(
            f"not writing the resume checkpoint of '{run_dir}' at step {state.get('step', '?')}: "
            f"{_names(bad)} {_hold(bad)} NaN or infinite values (training diverged). The previous "
            "checkpoint is kept; lower the learning rate and resume from it")
    path = Path(run_dir) / RESUME_NAME
    tmp = path.with_name(f".{RESUME_NAME}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_resume_state(run_dir: Path) -> dict[str, Any] | None:
    """The saved state of a run, or None when it has none yet. CheckpointError if the file
    is empty, damaged, holds anything but tensors and plain data, or NaN/infinite values."""
    path = Path(run_dir) / RESUME_NAME
    if not path.exists():
        return None
    advice = ("Delete it to start the run again, or restore it from a backup; the last "
              "published weights are in RUN_DIR/model")
    if path.stat().st_size == 0:
        raise CheckpointError(f"the resume checkpoint '{path}' is empty (0 bytes): the run was "
                              f"stopped while writing it, or the disk was full. {advice}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(f"the resume checkpoint '{path}' is damaged: "
                              f"{describe_torch_load_error(error)}. {advice}") from None
    if not isinstance(state, dict) or "step" not in state:
        raise CheckpointError(f"'{path}' is not a voicelab resume checkpoint (it holds "
                              f"{type(state).__name__}, without a step). {advice}")
    bad = non_finite_tensors(state)
    if bad:
        raise CheckpointError(f"the resume checkpoint '{path}' is damaged: {_names(bad)} "
                              f"{_hold(bad)} NaN or infinite values, so training cannot continue "
                              f"from it. {advice}")
    return state


def _names(names: list[str], limit: int = 3) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _hold(names: list[str]) -> str:
    return "holds" if len(names) == 1 else "hold"


def remove_interrupted_writes(run_dir: Path) -> list[Path]:
    """Remove what a run killed while writing leaves behind: a half-written resume state
    and half-published model files. Only the run's own trainer calls this, before it
    writes anything, so no live writer is disturbed."""
    run_dir = Path(run_dir)
    removed = remove_stale_temporaries(run_dir, (RESUME_NAME,), older_than=0)
    if (run_dir / "model").is_dir():
        removed += remove_stale_temporaries(run_dir / "model", older_than=0)
    return removed


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def restore_training_state(state: dict[str, Any], model, optimizer, scheduler) -> int:
    """Load a resume state's model, optimizer, scheduler and RNG; returns its step."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    return int(state["step"])

"""One clip through a chain of sox effects, as 16 kHz mono 16-bit audio, written atomically.

Shared by the corpora that make new voices from existing clips (`vc.data.piper_corpus`,
`vc.data.shifted_speakers`): the output is checked before it replaces anything, so an
interrupted or failed render never leaves a half-written clip that a resumed build would keep.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf

from vc.errors import VoicelabError

SAMPLE_RATE = 16000


def pitch_effects(cents: float, tempo: float = 1.0) -> list[str]:
    """sox effects moving pitch and formants by `cents` and the speaking rate by `tempo` (no-ops left out)."""
    effects = []
    if cents:
        effects += ["pitch", f"{cents:.1f}"]
    if tempo != 1.0:
        effects += ["tempo", "-s", f"{tempo:.4f}"]
    return effects


def render_with_sox(source: Path, out: Path, effects: Sequence[str], timeout: float = 300) -> None:
    """`source` through `effects`, resampled to 16 kHz mono, at `out`; raises VoicelabError when sox
    is missing, fails, or gives empty, silent or non-finite audio."""
    if shutil.which("sox") is None:
        raise VoicelabError("these corpora need sox; install it (apt install sox, or scripts/setup.sh)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.wav")
    command = ["sox", "-V1", str(source), "-b", "16", str(tmp), *effects,
               "rate", "-v", str(SAMPLE_RATE), "channels", "1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise VoicelabError(f"sox failed on {source.name}: {result.stderr.strip()[-300:]}")
    samples, _ = sf.read(tmp, dtype="float32")
    if samples.size == 0 or not np.isfinite(samples).all() or np.abs(samples).max() == 0:
        tmp.unlink()
        raise VoicelabError(f"{source.name}: sox produced no usable audio")
    os.replace(tmp, out)

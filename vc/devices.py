"""Checking a device name before any work is done on it."""
from __future__ import annotations

from .errors import VoicelabError


def check_device(device) -> str:
    """`device` as torch names it ("cpu", "cuda:0", ...) if this machine can run on it;
    VoicelabError saying what exists otherwise (not PyTorch's assertion halfway through)."""
    import torch
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise VoicelabError(f"unknown device {str(device)!r}; use cpu, cuda, cuda:N or mps") from None
    if parsed.type == "cpu":
        return str(parsed)
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            why = ("this PyTorch was built without CUDA" if torch.version.cuda is None
                   else "no CUDA GPU is visible")
            raise VoicelabError(f"cannot run on {str(device)!r}: {why}; use --device cpu")
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            raise VoicelabError(f"cannot run on {str(device)!r}: this machine has {count} CUDA "
                                f"GPU(s), cuda:0 to cuda:{count - 1}")
        return str(parsed)
    if parsed.type == "mps":
        if not torch.backends.mps.is_available():
            raise VoicelabError(f"cannot run on {str(device)!r}: Apple's MPS is not available "
                                "here; use --device cpu")
        return str(parsed)
    raise VoicelabError(f"voicelab does not run on {parsed.type!r} devices; use cpu, cuda or mps")

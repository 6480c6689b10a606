"""Processing long sequences in overlapping chunks, cross-faded back together.

Conversion and vocoding of a minutes-long recording run chunk by chunk so memory stays bounded
by the chunk size; a linear cross-fade over each overlap hides the seams.
"""
from __future__ import annotations

from typing import Callable

import torch


def chunk_starts(length: int, chunk: int, overlap: int, align: int = 1) -> list[int]:
    """Start indices of chunks of `chunk` items overlapping by at least `overlap` that cover
    `length`; every start is a multiple of `align` (a model's down-sampling factor, so each
    chunk sees the same code grid as the whole sequence)."""
    if chunk <= overlap:
        raise ValueError(f"chunk ({chunk}) must be longer than overlap ({overlap})")
    if length <= chunk:
        return [0]
    step = max(align, (chunk - overlap) // align * align)
    starts = list(range(0, length - chunk, step))
    last = (length - chunk) // align * align  # the last chunk reaches the end (or just short)
    if last > starts[-1]:
        starts.append(last)
    return starts


def process_in_chunks(x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor], chunk: int,
                      overlap: int, scale: int = 1, align: int = 1,
                      progress: Callable[[float, str], None] | None = None) -> torch.Tensor:
    """Apply `fn` to overlapping chunks of `x` along its last axis and cross-fade the results.

    Args:
        x: (..., T).
        fn: maps a chunk (..., n) to (..., n * scale).
        chunk, overlap: chunk length and overlap, in items of `x`.
        scale: output items per input item (e.g. the hop length when fn is a vocoder).
        align: chunk starts are multiples of this.
        progress: called with the fraction done after each chunk.

    Returns:
        (..., T * scale); equal to fn(x) when T <= chunk.
    """
    length = x.shape[-1]
    starts = chunk_starts(length, chunk, overlap, align)
    out = None
    previous_end = 0
    for index, start in enumerate(starts):
        end = length if index == len(starts) - 1 else min(start + chunk, length)
        y = fn(x[..., start:end])
        if y.shape[-1] != (end - start) * scale:
            raise ValueError(f"chunk function returned {y.shape[-1]} items for {end - start} "
                             f"inputs; expected {(end - start) * scale}")
        if out is None:
            out = y.new_zeros(*y.shape[:-1], length * scale)
            out[..., : end * scale] = y
        else:
            shared = (previous_end - start) * scale
            fade = torch.linspace(0.0, 1.0, shared + 2, device=y.device, dtype=y.dtype)[1:-1]
            lo = start * scale
            out[..., lo:lo + shared] = out[..., lo:lo + shared] * (1 - fade) + y[..., :shared] * fade
            out[..., lo + shared:end * scale] = y[..., shared:]
        previous_end = end
        if progress is not None:
            progress((index + 1) / len(starts), "")
    return out

"""Chunked processing equals whole processing for local functions, and covers every item."""
from __future__ import annotations

import pytest
import torch

from vc.chunking import chunk_starts, process_in_chunks


def test_starts_cover_the_sequence():
    assert chunk_starts(50, 100, 10) == [0]
    starts = chunk_starts(1000, 300, 50)
    assert starts[0] == 0 and starts[-1] == 700
    assert all(b - a <= 250 for a, b in zip(starts, starts[1:]))
    with pytest.raises(ValueError, match="longer than overlap"):
        chunk_starts(100, 10, 10)


def test_pointwise_function_is_unchanged_by_chunking():
    x = torch.randn(3, 1234)
    out = process_in_chunks(x, lambda c: c * 2 + 1, chunk=200, overlap=40)
    assert torch.allclose(out, x * 2 + 1, atol=1e-6)


def test_scaled_output_and_progress():
    x = torch.randn(2, 500)
    seen = []
    out = process_in_chunks(x, lambda c: c.repeat_interleave(4, dim=-1), chunk=128, overlap=16,
                            scale=4, progress=lambda f, _: seen.append(f))
    assert torch.allclose(out, x.repeat_interleave(4, dim=-1), atol=1e-6)
    assert seen[-1] == 1.0 and len(seen) == len(chunk_starts(500, 128, 16))


def test_local_convolution_matches_away_from_seams():
    conv = torch.nn.Conv1d(1, 1, 9, padding=4, bias=False)
    x = torch.randn(1, 1, 2000)
    with torch.no_grad():
        whole = conv(x)
        chunked = process_in_chunks(x, conv, chunk=300, overlap=40)
    # Each chunk is wrong only within 4 frames (half the kernel) of its own edges; everywhere
    # else chunked equals whole, the cross-faded overlaps included.
    error = (whole - chunked).abs()[0, 0]
    starts = chunk_starts(2000, 300, 40)
    far = torch.ones(2000, dtype=torch.bool)
    for s in starts[1:]:
        far[s:s + 4] = False
    for s in starts[:-1]:
        far[s + 300 - 4:s + 300] = False
    assert error[far].max() < 1e-5
    assert error.max() < 1.0  # near the edges the cross-fade keeps the error small

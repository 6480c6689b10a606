"""Shared fixtures: where the real speech lives, and small clips made from it."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def real_speech_root() -> Path:
    """`../shared/real-speech` beside the checkout, or $VOICELAB_REAL_SPEECH."""
    return Path(os.environ.get("VOICELAB_REAL_SPEECH", REPO.parent / "shared" / "real-speech"))


@pytest.fixture(scope="session")
def real_speech() -> Path:
    root = real_speech_root()
    if not (root / "librispeech").is_dir():
        pytest.skip(f"real speech not found at {root}; set VOICELAB_REAL_SPEECH")
    return root


@pytest.fixture(scope="session")
def test_other(real_speech) -> dict[str, list[Path]]:
    """Held-out LibriSpeech speakers: speaker id -> sorted flac files."""
    base = real_speech / "librispeech" / "test-other"
    return {d.name: sorted(d.glob("*.flac")) for d in sorted(base.iterdir()) if d.is_dir()}


@pytest.fixture(scope="session")
def speaker_encoder():
    from vc.speaker import SpeakerEncoder
    return SpeakerEncoder.pretrained()


@pytest.fixture(scope="module")
def one_thread():
    """Small models gain nothing from intra-op threads, and on a shared 2-core machine a second
    torch thread spin-waiting at every time step makes training 10-100x slower."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def fit(model, batch, steps: int, lr: float = 3e-3) -> list[tuple[float, dict]]:
    """Train `model` on one fixed batch with Adam; the (loss, parts) of every step."""
    import torch
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for _ in range(steps):
        loss, parts = model.loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append((loss.item(), parts))
    return history

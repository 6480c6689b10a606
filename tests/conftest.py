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

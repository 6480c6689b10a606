"""Shared fixtures: where the real speech lives, and small clips made from it."""
from __future__ import annotations

import contextlib
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
def aligned_vctk(real_speech, tmp_path_factory):
    """Three clips of each of two VCTK speakers, forced-aligned to their transcripts (a manifest)."""
    from vc.data.align import align_corpus
    from vc.data.utterance import Utterance
    texts = dict(line.split("\t", 1) for line in
                 (real_speech / "vctk" / "transcripts.tsv").read_text().splitlines()[1:])
    utterances = [Utterance(c, speaker, texts[c.stem.split("_")[1]].strip(), None, "vctk")
                  for speaker in ("p225", "p226")
                  for c in sorted((real_speech / "vctk" / speaker).glob("*.wav"))[:3]]
    out = tmp_path_factory.mktemp("aligned") / "vctk.jsonl"
    assert align_corpus(utterances, out, progress=False)["aligned"] == 6
    return out


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


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def served_app(settings, max_file_size: str):
    """The web demo built with `settings`, served on a free loopback port; yields a
    gradio_client Client and closes the server afterwards."""
    from gradio_client import Client
    from app import build_app
    app = build_app(settings)
    app.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True,
               max_file_size=max_file_size)
    try:
        yield Client(app.local_url, verbose=False)
    finally:
        app.close()


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

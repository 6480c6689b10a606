"""The web demo through its HTTP API, as a `gradio_client` script sees it: the app is launched on
localhost with the shipped checkpoints, real conversions run, and every bad input gets its own
message while the server keeps serving."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from app import ROOT, Demo, DemoSettings
from conftest import served_app

SOURCE = ROOT / "assets" / "examples" / "flite-rms-deep.wav"
VOICE = ROOT / "assets" / "voices" / "festival-slt-light.wav"


@pytest.fixture(scope="module")
def client():
    with served_app(DemoSettings(max_seconds=8.0, max_upload_mb=1), "1mb") as served:
        yield served


def convert(client, source, reference=VOICE, model="vqvc-small"):
    return client.predict(handle_file(str(source)), handle_file(str(reference)) if reference else None,
                          model, api_name="/convert")


def test_convert_returns_audio_of_the_model_rate_and_the_source_length(client):
    out = sf.info(convert(client, SOURCE))
    assert out.samplerate == 16000
    # the source is trimmed of silence at its ends, never stretched
    assert 0.6 * sf.info(SOURCE).duration < out.duration <= sf.info(SOURCE).duration + 0.05
    for model in ("vqvae-small", "autovc-small"):
        assert sf.info(convert(client, SOURCE, model=model)).samplerate == 16000


def test_odd_rates_and_channels_are_accepted(client, tmp_path):
    samples, rate = sf.read(SOURCE)
    stereo = tmp_path / "stereo-44k.wav"
    resampled = np.interp(np.arange(0, len(samples), rate / 44100), np.arange(len(samples)), samples)
    sf.write(stereo, np.stack([resampled, 0.5 * resampled], axis=1), 44100)
    out = sf.info(convert(client, stereo))
    assert out.samplerate == 16000 and out.channels == 1


@pytest.mark.parametrize("make, message", [
    (lambda d: (d / "notes.txt").write_text("not audio") and d / "notes.txt", "could not read"),
    (lambda d: _wav(d / "silent.wav", np.zeros(16000)), "is silent"),
    (lambda d: _wav(d / "blip.wav", np.r_[np.zeros(8000), 0.5 * np.sin(np.arange(1600) / 3), np.zeros(8000)]),
     "of speech"),
    (lambda d: _wav(d / "long.wav", 0.3 * np.sin(np.arange(16000 * 10) / 5)), "longest accepted is 8 s"),
    (lambda d: _wav(d / "empty.wav", np.zeros(0)), "no samples"),
])
def test_bad_source_gives_its_message_and_the_server_keeps_serving(client, tmp_path, make, message):
    with pytest.raises(AppError, match=message):
        convert(client, make(tmp_path))
    assert sf.info(convert(client, SOURCE)).samplerate == 16000


def test_missing_reference_unknown_model_and_oversized_upload(client, tmp_path):
    with pytest.raises(AppError, match="No reference clip"):
        convert(client, SOURCE, reference=None)
    with pytest.raises(AppError, match="not in the list of choices"):
        convert(client, SOURCE, model="no-such-model")
    big = _wav(tmp_path / "big.wav", 0.1 * np.random.default_rng(0).standard_normal(16000 * 40))  # 1.3 MB
    with pytest.raises(Exception, match="(?i)size|large"):
        convert(client, big)
    assert sf.info(convert(client, SOURCE)).samplerate == 16000


def test_compare_runs_each_model_once(client):
    result = client.predict(handle_file(str(SOURCE)), None, "festival-slt-light", ["vqvc-small", "vqvae-small"],
                            "griffinlim", api_name="/compare")
    values = [r.get("value") if isinstance(r, dict) else r for r in result]  # updates carry values
    audio = [v for v in values if isinstance(v, str) and v.endswith(".wav")]
    notes = [v for v in values if isinstance(v, str) and "similarity" in v]
    assert len(audio) == 2 and {sf.info(a).samplerate for a in audio} == {16000}
    assert [n.split("**")[1] for n in notes] == ["vqvc-small", "vqvae-small"]


def _wav(path: Path, samples: np.ndarray) -> Path:
    sf.write(path, np.asarray(samples, dtype=np.float32), 16000)
    return path


def test_page_lists_unavailable_models_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    registry = tmp_path / "models.json"
    registry.write_text('{"converters": [{"source": "vqvc-small"}, {"name": "hub-model", "source": '
                        '"someone/model", "revision": "abc123"}], "vocoders": [{"source": "griffinlim"}]}')
    demo = Demo(DemoSettings(registry=registry))
    assert "hub-model" in demo.availability() and "offline" in demo.availability()
    assert demo.registry.converter_names() == ["vqvc-small"]

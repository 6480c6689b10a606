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


# ------------------------------------------------------------------ text cloning (the Clone tab)

SPEECH = ROOT / "assets" / "examples" / "festival-ked-slow.wav"
SHIPPED_SYNTH = (ROOT / "checkpoints" / "synth-small").is_dir()


@pytest.fixture(scope="module")
def clone_settings(tmp_path_factory):
    """A registry with an untrained tiny synthesizer ("tiny", always there) and the shipped
    synthesizer where the checkpoint is present."""
    import json
    from vc.models.synthesizer import DurationSynthesizer
    folder = tmp_path_factory.mktemp("clone")
    DurationSynthesizer.from_preset("tiny").save_pretrained(folder / "tiny")
    cloners = [{"name": "tiny", "source": str(folder / "tiny")}]
    cloners += [{"name": "synth-small", "source": "synth-small"}] if SHIPPED_SYNTH else []
    (folder / "models.json").write_text(json.dumps({
        "converters": [{"source": "vqvc-small"}], "vocoders": [{"source": "hifigan-fast"}, {"source": "griffinlim"}],
        "cloners": cloners, "default_cloner": "tiny"}))
    return DemoSettings(registry=folder / "models.json", max_seconds=8.0, max_upload_mb=1, max_text_chars=120)


@pytest.fixture(scope="module")
def clone_demo(clone_settings):
    """The Clone tab's logic (app_clone.CloneTab) on a page built from `clone_settings`."""
    return Demo(clone_settings).cloning


def no_progress(fraction, desc=""):
    pass


def test_clone_tab_speaks_the_text_and_shows_its_mel(clone_demo):
    wav, image, summary = clone_demo.clone("Hello there. How are you today?", None, "festival-slt-light", "tiny",
                                           "hifigan-fast", 1.0, progress=no_progress)
    out = sf.info(wav)
    assert out.samplerate == 16000 and out.frames > 0
    assert image.ndim == 3 and image.shape[2] == 3 and image.shape[0] > 100
    assert "with tiny + hifigan-fast; 2 sentences at rate 1" in summary and "**Time:**" in summary
    assert "Similarity to the reference:" in summary
    wav, _, summary = clone_demo.clone("Hello there.", str(VOICE), None, "tiny", "griffinlim", 1.5, no_progress)
    assert sf.info(wav).frames > 0 and "with tiny + griffinlim; 1 sentence at rate 1.5" in summary


@pytest.mark.skipif(not SHIPPED_SYNTH, reason="checkpoints/synth-small is not there yet")
def test_the_shipped_synthesizer_clones_a_preset_voice(clone_demo):
    wav, _, summary = clone_demo.clone("The quick brown fox jumps over the lazy dog.", None, "flite-awb",
                                       "synth-small", "hifigan-fast", 1.0, no_progress)
    assert sf.info(wav).duration > 1.0
    similarity = float(summary.split("**Similarity to the reference:** ")[1].split(" ")[0])
    assert 0.0 < similarity <= 1.0
    slow, fast = (sf.info(clone_demo.clone("Hello there, my friend.", str(VOICE), None, "synth-small", "griffinlim",
                                           rate, no_progress)[0]).duration for rate in (0.5, 2.0))
    assert slow > 2 * fast > 0


@pytest.mark.parametrize("text, reference, preset, message", [
    ("", None, "flite-awb", "no text to speak"),
    ("   \n ", None, "flite-awb", "no text to speak"),
    ("word " * 30, None, "flite-awb", "150 characters long, over this cloner's limit of 120"),
    ("☃ ☂ ☃", None, "flite-awb", "nothing speakable"),
    ("Hello there.", None, None, "No target voice"),
    ("Hello there.", "silent.wav", None, "is silent"),
    ("Hello there.", "tone.wav", None, "no speech found"),
    ("Hello there.", "blip.wav", None, "of speech"),
    ("Hello there.", "notes.txt", None, "could not read 'notes.txt'"),
])
def test_clone_tab_bad_input_gets_a_clear_message(clone_demo, tmp_path, text, reference, preset, message):
    import gradio as gr
    made = {"silent.wav": lambda p: _wav(p, np.zeros(32000)),
            "tone.wav": lambda p: _wav(p, 0.3 * np.sin(np.arange(32000) / 5)),
            "blip.wav": lambda p: _wav(p, np.r_[np.zeros(8000), 0.5 * np.sin(np.arange(1600) / 3), np.zeros(8000)]),
            "notes.txt": lambda p: p.write_text("not audio") and p}
    path = str(made[reference](tmp_path / reference)) if reference else None
    with pytest.raises(gr.Error, match=message) as caught:
        clone_demo.clone(text, path, preset, "tiny", "griffinlim", 1.0, no_progress)
    assert "Traceback" not in str(caught.value)
    assert caught.value.print_exception is False  # the visitor's mistake: no traceback in the server's log


def test_clone_tab_refuses_an_unknown_cloner_and_a_bad_rate(clone_demo):
    import gradio as gr
    with pytest.raises(gr.Error, match="unknown cloner 'synth-huge'; choose one of: tiny"):
        clone_demo.clone("Hello.", None, "flite-awb", "synth-huge", "griffinlim", 1.0, no_progress)
    with pytest.raises(gr.Error, match="Speaking rate must be between 0.5 and 2"):
        clone_demo.clone("Hello.", None, "flite-awb", "tiny", "griffinlim", 2.5, no_progress)


@pytest.fixture(scope="module")
def clone_client(clone_settings):
    with served_app(clone_settings, "1mb") as served:
        yield served


def test_clone_endpoint_returns_speech(clone_client):
    wav = clone_client.predict("Good morning. See you soon!", handle_file(str(VOICE)), api_name="/clone")
    assert sf.info(wav).samplerate == 16000 and sf.info(wav).frames > 0  # defaults: tiny + hifigan-fast, rate 1
    wav = clone_client.predict("Good morning.", handle_file(str(SPEECH)), "tiny", "griffinlim", 1.5, api_name="/clone")
    assert sf.info(wav).frames > 0


def test_clone_endpoint_bad_inputs_and_the_server_keeps_serving(clone_client, tmp_path):
    def clone(text="Hello there.", reference=VOICE, *rest):
        return clone_client.predict(text, handle_file(str(reference)) if reference else None, *rest,
                                    api_name="/clone")
    with pytest.raises(AppError, match="no text to speak"):
        clone("")
    with pytest.raises(AppError, match="over this cloner's limit of 120"):
        clone("a" * 121)
    with pytest.raises(AppError, match="No reference clip"):
        clone(reference=None)
    with pytest.raises(AppError, match="is silent"):
        clone("Hello there.", _wav(tmp_path / "silent.wav", np.zeros(16000)))
    with pytest.raises(AppError, match="not in the list of choices"):
        clone("Hello there.", VOICE, "synth-huge")
    with pytest.raises(AppError, match="greater than maximum"):
        clone("Hello there.", VOICE, "tiny", "griffinlim", 3.0)
    assert sf.info(clone()).frames > 0


def test_an_old_registry_without_cloners_says_how_to_add_one(tmp_path):
    from app import build_app
    registry = tmp_path / "models.json"
    registry.write_text('{"converters": [{"source": "vqvc-small"}], "vocoders": [{"source": "griffinlim"}]}')
    settings = DemoSettings(registry=registry)
    app = build_app(settings)
    note = app.voicelab.cloning.note()
    assert "none is installed" in note and '"cloners"' in note and "models.json" in note
    notes = [b for b in app.blocks.values() if getattr(b, "elem_id", None) == "clone-note"]
    assert len(notes) == 1 and notes[0].value == note
    assert "/clone" not in {f"/{d.api_name}" for d in app.fns.values()}
    assert app.voicelab.registry.converter_names() == ["vqvc-small"]  # converting still works
    # listed but missing (say, not downloaded yet): the note names it
    registry.write_text('{"converters": [{"source": "vqvc-small"}], "vocoders": [{"source": "griffinlim"}], '
                        '"cloners": [{"name": "synth-x", "source": "no-such-synth"}]}')
    assert "the listed ones (synth-x) are unavailable" in Demo(settings).cloning.note()


def test_bad_input_is_not_logged_as_a_crash_but_a_crash_is():
    """A visitor's mistake (a VoicelabError) reaches the page without a traceback in the server's
    log; anything unexpected is shown and logged in full."""
    from app import _error
    from vc.errors import AudioError
    told, crashed = _error(AudioError("the clip is silent")), _error(RuntimeError("boom"))
    assert told.message == "the clip is silent" and told.print_exception is False
    assert "RuntimeError: boom" in crashed.message and crashed.print_exception is True

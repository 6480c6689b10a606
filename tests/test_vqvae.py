"""vc.models.vqvae: shapes, content frames, conversion, training on real speech, save/load."""
from __future__ import annotations

import math

import pytest
import torch

from conftest import fit

from vc.audio import prepare_speech
from vc.mel import MelConfig, MelSpectrogram
from vc.models.vqvae import VQVAE, VQVAECodes

# A model small enough to train 60 steps in a few seconds on one core.
TINY = dict(encoder_channels=64, encoder_blocks=1, codebook_size=32, code_dim=16,
            decoder_channels=64, decoder_layers=1, ema_decay=0.9, jitter=0.0)
FRAMES = 128


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def speech(test_other, speaker_encoder) -> dict[str, torch.Tensor]:
    """A training batch from real held-out speech: two utterances each of two speakers,
    {"mel": (4, 80, 128), "embedding": (4, 256), "speaker": (4,)}."""
    to_mel = MelSpectrogram(MelConfig())
    mels, embeddings, speakers = [], [], []
    for index, files in enumerate(list(test_other.values())[:2]):
        for path in files[:2]:
            audio = prepare_speech(path, 16000)
            mel = to_mel(torch.from_numpy(audio.samples).float())
            assert mel.shape[-1] >= FRAMES
            mels.append(mel[:, :FRAMES])
            embeddings.append(torch.from_numpy(speaker_encoder.embed(path)))
            speakers.append(index)
    return {"mel": torch.stack(mels), "embedding": torch.stack(embeddings),
            "speaker": torch.tensor(speakers)}


def fake_batch(size: int = 2, frames: int = 64) -> dict[str, torch.Tensor]:
    return {"mel": torch.randn(size, 80, frames) * 2.2 - 5.4,
            "embedding": torch.nn.functional.normalize(torch.randn(size, 256), dim=-1),
            "speaker": torch.arange(size) % 3}


def speakers_for(model: VQVAE, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    if model.speaker_conditioning == "table":
        return torch.stack([model.speaker_from_id(int(i)) for i in batch["speaker"]])
    return torch.stack([model.speaker([], e) for e in batch["embedding"]])


@pytest.mark.parametrize("conditioning", ["embedding", "table"])
@pytest.mark.parametrize("levels", [1, 2])
def test_small_preset_shapes(conditioning, levels):
    torch.manual_seed(0)
    model = VQVAE.from_preset("small", speaker_conditioning=conditioning, n_speakers=3,
                              levels=levels)
    assert model.frame_multiple == (2 if levels == 1 else 4)
    batch = fake_batch()
    loss, logs = model.loss(batch)
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert {"recon", "commit", "perplexity"} <= set(logs)
    assert ("perplexity_top" in logs) == (levels == 2)
    assert model.encoder[0].weight.grad is not None

    model.eval()
    speakers = speakers_for(model, batch)
    assert speakers.shape == (2, 256 if conditioning == "embedding" else 64)
    codes = model.encode(batch["mel"], speakers)
    assert codes.bottom.shape == (2, 32) and codes.bottom.dtype == torch.int64
    assert (codes.top is None) == (levels == 1)
    if levels == 2:
        assert codes.top.shape == (2, 16)
    assert model.decode(codes, speakers).shape == (2, 80, 64)


@pytest.mark.parametrize("conditioning", ["embedding", "table"])
@pytest.mark.parametrize("levels", [1, 2])
def test_paper_preset_builds(conditioning, levels):
    model = VQVAE.from_preset("paper", speaker_conditioning=conditioning, n_speakers=100,
                              levels=levels)
    assert model.quantizer.codebook.shape == (512, 64)
    assert model.encoder[0].out_channels == 768
    assert model.frames_per_code == 2
    params = sum(p.numel() for p in model.parameters())
    assert 5e6 < params < 20e6


def test_content_frames_rate_and_codes():
    torch.manual_seed(0)
    for frames_per_code in (2, 4):
        model = VQVAE(**{**TINY, "frames_per_code": frames_per_code}).eval()
        mel = torch.randn(80, 101) * 2.2 - 5.4
        content = model.content_frames(mel)
        expected = math.ceil(101 / frames_per_code)
        assert content.frame_rate == pytest.approx(MelConfig().frame_rate / frames_per_code)
        assert content.features.shape == (expected, 16)
        assert content.codes.shape == (expected,) and content.codes.dtype == torch.int64
        assert 0 <= int(content.codes.min()) and int(content.codes.max()) < 32
        # The codes are the nearest codewords of the features, as encode finds them.
        padded = torch.cat([mel, mel[:, -1:].expand(80, expected * frames_per_code - 101)], -1)
        assert torch.equal(model.encode(padded[None]).bottom[0], content.codes)


@pytest.mark.parametrize("levels", [1, 2])
def test_convert_keeps_any_length(levels):
    torch.manual_seed(0)
    model = VQVAE(**TINY, levels=levels).eval()
    source, target = fake_batch()["embedding"]
    for frames in (1, 7, 64, 129):
        out = model.convert(torch.randn(1, 80, frames) - 5, source[None], target[None])
        assert out.shape == (1, 80, frames) and torch.isfinite(out).all()


def test_targets_change_the_output(speech):
    torch.manual_seed(0)
    model = VQVAE(**TINY).eval()
    mel, embeddings = speech["mel"][:1], speech["embedding"]
    source = model.speaker([], embeddings[0])[None]
    same = model.convert(mel, source, model.speaker([], embeddings[0])[None])
    other = model.convert(mel, source, model.speaker([], embeddings[2])[None])  # other speaker
    assert torch.equal(same, model.convert(mel, source, source))
    assert (same - other).abs().mean() > 1e-3


def test_tiny_model_overfits_real_speech(speech):
    torch.manual_seed(0)
    model = VQVAE(**TINY)
    history = fit(model, speech, 60)
    first, last = history[0], history[-1]
    assert last[0] < 0.6 * first[0]
    assert last[1]["recon"] < 0.6 * first[1]["recon"]
    assert last[1]["perplexity"] > 4  # about 25 of 32 codes in use after 60 steps
    model.eval()
    codes = model.content_frames(speech["mel"][0]).codes
    assert codes.unique().numel() > 1


@pytest.mark.parametrize("settings", [dict(levels=2),
                                      dict(speaker_conditioning="table", n_speakers=2)])
def test_save_load_round_trip(tmp_path, speech, settings):
    torch.manual_seed(0)
    model = VQVAE(**TINY, **settings)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(3):  # moves the EMA codebook statistics away from their initial values
        loss, _ = model.loss(speech)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    assert bool(model.quantizer.initialized)
    loaded = VQVAE.from_pretrained(model.save_pretrained(tmp_path / "vqvae"))
    assert not loaded.training and loaded.get_config() == model.get_config()
    expected, got = model.state_dict(), loaded.state_dict()
    assert expected.keys() == got.keys()
    assert {"quantizer.ema_count", "quantizer.ema_sum", "quantizer.codebook"} <= got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key

    speakers = speakers_for(model, speech)
    for net in (model, loaded):
        assert isinstance(net.encode(speech["mel"]), VQVAECodes)
    out = model.convert(speech["mel"], speakers, speakers.flip(0))
    assert torch.equal(out, loaded.convert(speech["mel"], speakers, speakers.flip(0)))
    assert torch.equal(model.content_frames(speech["mel"][1]).features,
                       loaded.content_frames(speech["mel"][1]).features)


def test_table_model_knows_only_training_speakers(speech):
    model = VQVAE(**TINY, speaker_conditioning="table", n_speakers=3).eval()
    with pytest.raises(ValueError, match="only knows its 3 training speakers") as error:
        model.speaker([speech["mel"][0]], speech["embedding"][0])
    assert "speaker_from_id" in str(error.value)
    assert model.speaker_from_id(2).shape == (64,)
    with pytest.raises(ValueError, match=r"out of range.*0\.\.2"):
        model.speaker_from_id(3)
    with pytest.raises(ValueError, match="n_speakers"):
        VQVAE(**TINY, speaker_conditioning="table")
    with pytest.raises(ValueError, match="speaker_from_id needs a speaker-table model"):
        VQVAE(**TINY).speaker_from_id(0)


def test_gradient_codebook_and_mse():
    torch.manual_seed(0)
    model = VQVAE(**TINY, ema=False, recon_loss="mse")
    loss, logs = model.loss(fake_batch())
    loss.backward()
    assert "codebook" in logs and model.quantizer.codebook.grad is not None


def test_rejects_bad_input():
    model = VQVAE(**TINY).eval()
    with pytest.raises(ValueError, match="not a multiple of 2"):
        model.encode(torch.zeros(1, 80, 9))
    with pytest.raises(ValueError, match=r"\(batch, 80, frames\)"):
        model.encode(torch.zeros(1, 40, 8))
    with pytest.raises(ValueError, match="GE2E"):
        model.speaker([torch.zeros(80, 10)], None)
    with pytest.raises(ValueError, match="levels must be 1 or 2"):
        VQVAE(**TINY, levels=3)

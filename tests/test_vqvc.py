"""VQVC+ and its vector quantiser: shapes, quantiser mechanics, conversion, training, saving."""
from __future__ import annotations

import json

import pytest
import torch

from conftest import fit

from vc.audio import prepare_speech
from vc.hub import load_model
from vc.mel import MelConfig, MelSpectrogram
from vc.models.quantize import VectorQuantizer, code_perplexity
from vc.models.vqvc import VQVC, mel_statistics

pytestmark = pytest.mark.usefixtures("one_thread")

FRAMES = 128
# A tiny model: trains in seconds on two cores.
TINY = dict(code_channels=[16, 8], codebook_sizes=[16, 32], strides=[2, 2], hidden=48)


@pytest.fixture(scope="module")
def speech_mels(test_other) -> dict[str, list[torch.Tensor]]:
    """Two held-out LibriSpeech speakers, two utterances each: speaker -> [(80, frames)]."""
    to_mel = MelSpectrogram(MelConfig())
    speakers = sorted(test_other)[:2]
    return {s: [to_mel(torch.from_numpy(prepare_speech(path, 16000).samples))
                for path in test_other[s][:2]] for s in speakers}


@pytest.fixture(scope="module")
def trained(speech_mels):
    """A tiny model fitted for 60 Adam steps to a fixed batch of real mels, with the losses."""
    torch.manual_seed(0)
    mels = [m for utterances in speech_mels.values() for m in utterances]
    batch = {"mel": torch.stack([m[:, :FRAMES] for m in mels])}
    model = VQVC(**TINY)
    model.set_normalization(*mel_statistics(mels))
    model.train()
    history = fit(model, batch, 60)
    return model.eval(), [parts["recon"] for _, parts in history], history[-1][1]


# ------------------------------------------------------------------ quantiser
def test_straight_through_gradient_reaches_the_input():
    vq = VectorQuantizer(8, 4)
    features = torch.randn(2, 5, 4, requires_grad=True)
    out = vq(features)
    assert out.quantized.shape == features.shape and out.codes.shape == (2, 5)
    assert torch.allclose(out.quantized, vq.codebook[out.codes])
    out.quantized.mul(torch.arange(4.0)).sum().backward()
    # The quantiser passes the gradient through unchanged.
    assert torch.allclose(features.grad, torch.arange(4.0).expand(2, 5, 4))


def test_gradient_flows_through_the_quantisers_to_the_encoder():
    model = VQVC(**TINY).train()
    loss, parts = model.loss({"mel": torch.randn(2, 80, 32) - 5})
    loss.backward()
    first_conv = model.encoder[0].layers[0].weight
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0
    assert {"recon", "commit", "perplexity"} <= set(parts)


def test_ema_update_moves_codewords_toward_their_vectors():
    torch.manual_seed(0)
    vq = VectorQuantizer(3, 2, decay=0.5)
    vq.codebook.copy_(torch.tensor([[0.0, 0.0], [10.0, 10.0], [-10.0, 10.0]]))
    vq.ema_sum.copy_(vq.codebook)
    target = torch.tensor([1.0, -1.0])
    vectors = target + 0.01 * torch.randn(50, 2)  # all nearest to codeword 0
    before = vq.codebook.clone()
    vq.train()(vectors)
    assert (vq.codebook[0] - target).norm() < (before[0] - target).norm() / 2
    assert torch.allclose(vq.codebook[1:], before[1:], atol=1e-3)  # unused ones stay put
    frozen = vq.codebook.clone()
    vq.eval()(vectors * 3)  # eval mode never updates
    assert torch.equal(vq.codebook, frozen)


def test_perplexity_of_uniform_and_of_collapsed_assignment():
    vq = VectorQuantizer(16, 4, normalize=True).eval()
    uniform = vq(vq.codewords().repeat(3, 1))
    assert uniform.perplexity.item() == pytest.approx(16.0, rel=1e-4)
    assert code_perplexity(uniform.codes, 16).item() == pytest.approx(16.0, rel=1e-4)
    collapsed = vq(vq.codewords()[5].expand(40, 4))
    assert collapsed.perplexity.item() == pytest.approx(1.0, abs=1e-4)


def test_loss_learned_codebook_gets_gradient_and_masks_padding():
    vq = VectorQuantizer(8, 4, ema=False, beta=0.25)
    features = torch.randn(3, 4)
    out = vq(features)
    out.loss.backward()
    assert vq.codebook.grad is not None and vq.codebook.grad.abs().sum() > 0
    assert out.loss.item() == pytest.approx(1.25 * out.commitment.item(), rel=1e-5)
    # A masked-out vector counts neither toward the losses nor the perplexity.
    padded = torch.cat([features, torch.full((1, 4), 100.0)])
    mask = torch.tensor([True, True, True, False])
    masked = vq(padded, mask=mask)
    assert masked.commitment.item() == pytest.approx(out.commitment.item(), rel=1e-5)
    assert masked.perplexity.item() == pytest.approx(out.perplexity.item(), rel=1e-5)


def test_data_init_and_dead_code_restart_spread_a_collapsed_codebook():
    torch.manual_seed(0)
    data = torch.randn(256, 4)
    far = VectorQuantizer(32, 4).train()
    far.codebook.add_(100.0)
    far.ema_sum.copy_(far.codebook)
    assert far(data).perplexity < 2  # everything lands on one codeword
    seeded = VectorQuantizer(32, 4, init_from_data=True).train()
    assert seeded(data).perplexity > 10
    assert bool(seeded.initialized)
    restarted = VectorQuantizer(32, 4, restart_threshold=1.0).train()
    restarted.codebook.add_(100.0)
    restarted.ema_sum.copy_(restarted.codebook)
    for _ in range(3):
        restarted(data)
    assert restarted(data).perplexity > 10


# ---------------------------------------------------------------------- model
def test_small_preset_shapes():
    model = VQVC.from_preset("small").eval()
    mel = torch.randn(2, 80, FRAMES) - 5
    codes = model.encode(mel)
    assert [tuple(c.shape) for c in codes] == [(2, 40, 64), (2, 20, 32), (2, 10, 16)]
    speaker = model.speaker([mel[0]], None)
    assert speaker.shape == (model.speaker_dim,) == (70,)
    assert model.decode(codes, speaker.expand(2, -1)).shape == mel.shape
    loss, parts = model.train().loss({"mel": mel, "embedding": torch.randn(2, 256),
                                      "speaker": torch.tensor([0, 1])})
    assert loss.dim() == 0 and torch.isfinite(loss) and parts["recon"] > 0
    assert model.frame_multiple == 8 and model.speaker_input == "mel"


def test_paper_preset_constructs():
    model = VQVC.from_preset("paper")
    assert model.frame_multiple == 8 and model.speaker_dim == 70
    assert [q.codebook_size for q in model.quantizers] == [32, 64, 128]
    assert not model.quantizers[0].ema
    assert 1_000_000 < sum(p.numel() for p in model.parameters()) < 1_500_000


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="one entry per level"):
        VQVC(code_channels=[8, 8], codebook_sizes=[4], strides=[2, 2])
    with pytest.raises(ValueError, match="recon_loss"):
        VQVC(recon_loss="huber")
    with pytest.raises(ValueError, match="needs ema"):
        VQVC(ema=False)
    with pytest.raises(ValueError, match="n_mels"):
        VQVC(mel_mean=[0.0, 1.0])
    with pytest.raises(ValueError, match="speaker vectors"):
        VQVC(**TINY).decode([torch.zeros(1, 16, 4), torch.zeros(1, 8, 2)], torch.zeros(1, 5))


@pytest.mark.parametrize("frames", [1, 7, 8, 37, 130])
def test_convert_keeps_the_length(frames):
    torch.manual_seed(0)
    model = VQVC(**TINY, resample=3).eval()
    mel = torch.randn(1, 80, frames) - 5
    speaker = model.speaker([mel[0]], None)
    out = model.convert(mel, speaker[None], speaker[None])
    assert out.shape == mel.shape and torch.isfinite(out).all()


def test_resample_holds_codes_over_windows():
    model = VQVC(**TINY, resample=4).eval()
    codes = model.encode(torch.randn(1, 80, 64) - 5)
    finest = codes[0][0]  # (16, 32)
    windows = finest.reshape(16, 8, 4)
    assert torch.allclose(windows, windows[..., :1].expand_as(windows))


def test_speaker_vector_changes_the_output(trained, speech_mels):
    model, _, _ = trained
    (first, second) = speech_mels.values()
    source = first[0][:, :FRAMES]
    own = model.speaker([source], None)
    other = model.speaker(second, None)  # two references, averaged
    assert other.shape == own.shape
    assert not torch.allclose(own, other)
    same = model.convert(source[None], own[None], own[None])
    converted = model.convert(source[None], own[None], other[None])
    assert (same - converted).abs().mean() > 0.05


def test_tiny_model_overfits_real_speech(trained):
    model, losses, parts = trained
    assert losses[-1] < 0.6 * losses[0], losses
    assert parts["perplexity"] > 2  # the codebooks did not collapse


def test_save_and_load_round_trip(trained, speech_mels, tmp_path):
    model, _, _ = trained
    model.save_pretrained(tmp_path / "vqvc")
    config = json.loads((tmp_path / "vqvc" / "config.json").read_text())
    assert config["model_type"] == "vqvc" and len(config["mel_mean"]) == 80
    loaded = load_model(tmp_path / "vqvc")
    assert isinstance(loaded, VQVC) and not loaded.training
    for key, value in model.state_dict().items():  # codebooks, EMA stats, normalisation
        assert torch.equal(value, loaded.state_dict()[key]), key
    mel = next(iter(speech_mels.values()))[1][:, :90]
    expected = model.convert(mel[None], model.speaker([mel])[None], model.speaker([mel])[None])
    got = loaded.convert(mel[None], loaded.speaker([mel])[None], loaded.speaker([mel])[None])
    assert torch.equal(expected, got)


def test_content_frames(trained, speech_mels):
    model, _, _ = trained
    mel = next(iter(speech_mels.values()))[0][:, :101]
    frames = model.content_frames(mel)
    assert frames.features.shape == (51, 16)
    assert frames.codes.shape == (51,) and frames.codes.dtype == torch.int64
    assert 0 <= int(frames.codes.min()) and int(frames.codes.max()) < 16
    assert frames.frame_rate == pytest.approx(MelConfig().frame_rate / 2)
    # The codes are those the model quantises with.
    assert torch.equal(frames.codes, model.quantizers[0].nearest(frames.features))

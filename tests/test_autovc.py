"""AutoVC: shapes, the bottleneck's frame picking, training on real speech, saving, and the
import of the officially released weights (checked against a reference forward pass written
here from the official Generator's description, on tensors named as in its state dict)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import fit
from torch.nn import functional as F

from vc.errors import CheckpointError
from vc.hub import load_model
from vc.mel import MelSpectrogram
from vc.models import ContentFrames
from vc.models.autovc import AutoVC, downsample_codes, upsample_codes
from vc.models.autovc_import import (
    OFFICIAL_MEL, convert_official_state_dict, import_official_autovc, official_key_to_ours,
)

# Small enough to train in seconds on two CPU cores.
TINY = dict(dim_neck=8, dim_emb=256, dim_pre=64, freq=8, dim_conv=64, dim_lstm=96,
            dim_postnet=64)


pytestmark = pytest.mark.usefixtures("one_thread")


def unit_embeddings(batch: int, dim: int = 256, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(batch, dim, generator=generator), dim=1)


def log_mels(batch: int, frames: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 80, frames, generator=generator) * 2.0 - 5.0


# --------------------------------------------------------------------------- shapes
def test_small_preset_shapes_and_size():
    torch.manual_seed(0)
    model = AutoVC.from_preset("small")
    assert model.frame_multiple == model.freq == 16
    size_mb = sum(p.numel() for p in model.parameters()) * 4 / 1e6
    assert size_mb < 5.5
    mel, emb = log_mels(2, 64), unit_embeddings(2)
    codes = model.encode(mel, emb)
    assert codes.shape == (2, 4, 32)
    out = model.decode(codes, emb)
    assert out.shape == (2, 80, 64)
    loss, parts = model.loss({"mel": mel, "embedding": emb, "speaker": torch.zeros(2)})
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert set(parts) == {"recon", "recon_pre", "content"}


def lstm_params(inputs: int, hidden: int, layers: int, directions: int = 1) -> int:
    total = 0
    for layer in range(layers):
        size_in = inputs if layer == 0 else hidden * directions
        total += directions * (4 * hidden * (size_in + hidden) + 8 * hidden)
    return total


def conv_bn_params(channels_in: int, channels_out: int) -> int:
    return channels_out * channels_in * 5 + channels_out + 2 * channels_out


def test_paper_preset_has_the_published_size():
    model = AutoVC.from_preset("paper")
    expected = (
        conv_bn_params(80 + 256, 512) + 2 * conv_bn_params(512, 512)       # encoder convs
        + lstm_params(512, 32, 2, directions=2)                            # bottleneck BiLSTM
        + lstm_params(64 + 256, 512, 1) + 3 * conv_bn_params(512, 512)     # decoder front
        + lstm_params(512, 1024, 2) + 1024 * 80 + 80                       # decoder LSTM, proj
        + conv_bn_params(80, 512) + 3 * conv_bn_params(512, 512) + conv_bn_params(512, 80))
    count = sum(p.numel() for p in model.parameters())
    assert count == expected
    assert 28e6 < count < 29e6  # about 114 MB of float32, the order of the released autovc.ckpt


# ------------------------------------------------------------------ bottleneck frames
def test_downsampling_takes_forward_at_window_ends_and_backward_at_starts():
    frames, freq = 12, 4
    time_index = torch.arange(frames, dtype=torch.float32)
    # One unit per direction; each output holds its frame number (backward offset by 100).
    outputs = torch.stack([time_index, 100 + time_index], dim=-1)[None]  # (1, 12, 2)
    codes = downsample_codes(outputs, freq)
    assert codes[0].tolist() == [[3, 100], [7, 104], [11, 108]]

    # The same as the released code's loop over windows, on random outputs.
    outputs = torch.randn(2, 32, 6)
    looped = torch.stack([torch.cat([outputs[:, i + 7, :3], outputs[:, i, 3:]], dim=-1)
                          for i in range(0, 32, 8)], dim=1)
    assert torch.equal(downsample_codes(outputs, 8), looped)
    assert torch.equal(upsample_codes(looped, 8)[:, 8:16], looped[:, 1:2].expand(-1, 8, -1))
    with pytest.raises(ValueError, match="multiple of freq"):
        downsample_codes(torch.randn(1, 10, 2), 4)


def test_convert_keeps_any_length_and_content_frames():
    torch.manual_seed(0)
    model = AutoVC(**TINY).eval()
    mel = log_mels(1, 45)
    src, tgt = unit_embeddings(2).unbind(0)
    with torch.no_grad():
        out = model.convert(mel, src[None], tgt[None])
        assert out.shape == (1, 80, 45)
        with pytest.raises(ValueError, match="multiple of freq"):
            model.encode(mel, src[None])
        frames = model.content_frames(mel[0], speaker=src)
    assert isinstance(frames, ContentFrames) and frames.codes is None
    assert frames.features.shape == (6, 16)  # ceil(45 / 8) codes of 2 * dim_neck
    assert frames.frame_rate == pytest.approx(16000 / 256 / 8)
    assert model.content_frames(mel[0]).features.shape == (6, 16)  # zero speaker by default


def test_speaker_is_the_embedding():
    model = AutoVC(**TINY)
    with pytest.raises(ValueError, match="embedding"):
        model.speaker([torch.zeros(80, 10)], None)
    one = unit_embeddings(1)[0]
    assert torch.equal(model.speaker([], one.numpy()), one)
    several = unit_embeddings(3)
    mean = model.speaker([], several)
    assert torch.allclose(mean, F.normalize(several.mean(0), dim=0)) and mean.shape == (256,)
    with pytest.raises(ValueError, match="256"):
        model.speaker([], torch.zeros(40))


# --------------------------------------------------------------------- real speech
@pytest.fixture(scope="module")
def speech_batch(test_other, speaker_encoder):
    """Four 64-frame log-mel segments of four held-out LibriSpeech speakers, with their GE2E
    embeddings."""
    from vc.audio import prepare_speech
    to_mel = MelSpectrogram()
    mels, embeddings = [], []
    for speaker in sorted(test_other)[:4]:
        path = test_other[speaker][0]
        mel = to_mel(torch.from_numpy(prepare_speech(path, 16000).samples))
        start = (mel.shape[-1] - 64) // 2
        mels.append(mel[:, start:start + 64])
        embeddings.append(torch.from_numpy(speaker_encoder.embed(path)))
    return {"mel": torch.stack(mels), "embedding": torch.stack(embeddings),
            "speaker": torch.arange(4)}


def test_tiny_model_overfits_real_speech(speech_batch):
    torch.manual_seed(0)
    model = AutoVC(**TINY)
    history = [parts["recon"] for _, parts in fit(model, speech_batch, 60)]
    assert history[-1] < 0.2 * history[0], history[::10]
    # Well below what predicting the batch's mean log-mel level would score.
    assert history[-1] < 0.6 * float(speech_batch["mel"].var()), history[::10]
    assert np.isfinite(history).all()


def test_save_and_load_give_identical_output(tmp_path, speech_batch):
    torch.manual_seed(0)
    model = AutoVC(**TINY)
    model.loss(speech_batch)[0].backward()  # a training-mode pass moves BatchNorm's statistics
    model.eval()
    folder = model.save_pretrained(tmp_path / "autovc")
    mel, emb = speech_batch["mel"][:2], speech_batch["embedding"]
    with torch.no_grad():
        expected = model.convert(mel[:, :, :50], emb[:2], emb[2:])
        for loaded in (AutoVC.from_pretrained(folder), load_model(folder)):
            assert isinstance(loaded, AutoVC) and loaded.mel == model.mel
            assert torch.equal(loaded.convert(mel[:, :, :50], emb[:2], emb[2:]), expected)


# -------------------------------------------------------------- official weights
def official_state_dict(dim_neck=32, dim_emb=256, dim_pre=512, dim_conv=512, dim_lstm=1024,
                        dim_postnet=512, n_mels=80, seed=0) -> dict[str, torch.Tensor]:
    """Random tensors under the names and shapes of the official `model_vc.Generator`'s state
    dict (the release hard-codes dim_conv=512, dim_lstm=1024, dim_postnet=512, n_mels=80)."""
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}

    def rand(*shape, scale=0.1, offset=0.0):
        return torch.randn(*shape, generator=generator) * scale + offset

    def conv_bn(prefix, c_in, c_out):
        state[f"{prefix}.0.conv.weight"] = rand(c_out, c_in, 5, scale=(c_in * 5) ** -0.5)
        state[f"{prefix}.0.conv.bias"] = rand(c_out)
        state[f"{prefix}.1.weight"] = rand(c_out, offset=1.0)
        state[f"{prefix}.1.bias"] = rand(c_out)
        state[f"{prefix}.1.running_mean"] = rand(c_out)
        state[f"{prefix}.1.running_var"] = rand(c_out).abs() + 0.5
        state[f"{prefix}.1.num_batches_tracked"] = torch.tensor(1000)

    def lstm(prefix, size_in, hidden, layers, bidirectional=False):
        for layer in range(layers):
            layer_in = size_in if layer == 0 else hidden * (2 if bidirectional else 1)
            for suffix in ("", "_reverse") if bidirectional else ("",):
                state[f"{prefix}.weight_ih_l{layer}{suffix}"] = rand(4 * hidden, layer_in,
                                                                     scale=hidden ** -0.5)
                state[f"{prefix}.weight_hh_l{layer}{suffix}"] = rand(4 * hidden, hidden,
                                                                     scale=hidden ** -0.5)
                state[f"{prefix}.bias_ih_l{layer}{suffix}"] = rand(4 * hidden)
                state[f"{prefix}.bias_hh_l{layer}{suffix}"] = rand(4 * hidden)

    for i in range(3):
        conv_bn(f"encoder.convolutions.{i}", n_mels + dim_emb if i == 0 else dim_conv, dim_conv)
    lstm("encoder.lstm", dim_conv, dim_neck, 2, bidirectional=True)
    lstm("decoder.lstm1", 2 * dim_neck + dim_emb, dim_pre, 1)
    for i in range(3):
        conv_bn(f"decoder.convolutions.{i}", dim_pre, dim_pre)
    lstm("decoder.lstm2", dim_pre, dim_lstm, 2)
    state["decoder.linear_projection.linear_layer.weight"] = rand(n_mels, dim_lstm,
                                                                  scale=dim_lstm ** -0.5)
    state["decoder.linear_projection.linear_layer.bias"] = rand(n_mels)
    sizes = [n_mels] + [dim_postnet] * 4 + [n_mels]
    for i in range(5):
        conv_bn(f"postnet.convolutions.{i}", sizes[i], sizes[i + 1])
    return state


def reference_generator(state, mel, source, target, dim_neck, freq):
    """The official Generator's forward pass in eval mode, straight from its tensors by name.

    mel (B, T, 80) as the official code takes it; returns the post-net mel (B, T, 80)."""
    def conv_bn(x, prefix):
        x = F.conv1d(x, state[f"{prefix}.0.conv.weight"], state[f"{prefix}.0.conv.bias"],
                     padding=2)
        return F.batch_norm(x, state[f"{prefix}.1.running_mean"],
                            state[f"{prefix}.1.running_var"], state[f"{prefix}.1.weight"],
                            state[f"{prefix}.1.bias"], training=False, eps=1e-5)

    def lstm(x, prefix, hidden, layers, bidirectional=False):
        weights = {k[len(prefix) + 1:]: v for k, v in state.items() if k.startswith(prefix + ".")}
        module = torch.nn.LSTM(weights["weight_ih_l0"].shape[1], hidden, layers,
                               batch_first=True, bidirectional=bidirectional)
        module.load_state_dict(weights)
        return module(x)[0]

    frames = mel.shape[1]
    x = torch.cat([mel.transpose(1, 2), source[:, :, None].expand(-1, -1, frames)], dim=1)
    for i in range(3):
        x = F.relu(conv_bn(x, f"encoder.convolutions.{i}"))
    outputs = lstm(x.transpose(1, 2), "encoder.lstm", dim_neck, 2, bidirectional=True)
    codes = [torch.cat([outputs[:, i + freq - 1, :dim_neck], outputs[:, i, dim_neck:]], dim=-1)
             for i in range(0, frames, freq)]
    expanded = torch.cat([c[:, None].expand(-1, freq, -1) for c in codes], dim=1)
    x = torch.cat([expanded, target[:, None].expand(-1, frames, -1)], dim=-1)
    x = lstm(x, "decoder.lstm1", state["decoder.lstm1.weight_hh_l0"].shape[1], 1).transpose(1, 2)
    for i in range(3):
        x = F.relu(conv_bn(x, f"decoder.convolutions.{i}"))
    x = lstm(x.transpose(1, 2), "decoder.lstm2", state["decoder.lstm2.weight_hh_l0"].shape[1], 2)
    before = F.linear(x, state["decoder.linear_projection.linear_layer.weight"],
                      state["decoder.linear_projection.linear_layer.bias"])
    y = before.transpose(1, 2)
    for i in range(4):
        y = torch.tanh(conv_bn(y, f"postnet.convolutions.{i}"))
    return before + conv_bn(y, "postnet.convolutions.4").transpose(1, 2)


def test_import_of_the_released_weights_matches_the_official_network():
    official = official_state_dict()  # the released Generator(32, 256, 512, 32)
    model = import_official_autovc({"model": official})
    assert model.init_kwargs == {**AutoVC.presets["paper"], "content_weight": 1.0,
                                 "mel_mean": 0.0, "mel_std": 1.0, "mel": OFFICIAL_MEL}
    assert not model.training
    ours = model.state_dict()
    # Every official tensor lands, unchanged, in exactly one of our tensors, and fills all.
    targets = [official_key_to_ours(name) for name in official]
    assert sorted(targets) == sorted(ours)
    for name, target in zip(official, targets):
        assert torch.equal(ours[target], official[name]), name
    assert official_key_to_ours("decoder.lstm2.weight_hh_l1") == "decoder.lstm.weight_hh_l1"

    torch.manual_seed(1)
    mel = torch.rand(1, 80, 64)  # the official dB mels lie in [0, 1]
    source, target = unit_embeddings(2, seed=1).unbind(0)
    with torch.no_grad():
        ours_out = model.convert(mel, source[None], target[None])
        reference = reference_generator(official, mel.transpose(1, 2), source[None],
                                        target[None], dim_neck=32, freq=32)
    torch.testing.assert_close(ours_out, reference.transpose(1, 2), rtol=1e-4, atol=1e-4)


def test_import_from_a_file_is_strict_and_saves(tmp_path):
    official = official_state_dict(dim_neck=4, dim_pre=32, dim_conv=32, dim_lstm=48,
                                   dim_postnet=32)
    path = tmp_path / "autovc.ckpt"
    torch.save({"model": official, "optimizer": {}}, path)
    model = import_official_autovc(path, freq=8)
    assert (model.dim_neck, model.freq, model.mel) == (4, 8, OFFICIAL_MEL)
    saved = load_model(model.save_pretrained(tmp_path / "imported"))
    mel, emb = torch.rand(1, 80, 20), unit_embeddings(1)
    with torch.no_grad():
        assert torch.equal(saved.convert(mel, emb, emb), model.convert(mel, emb, emb))

    with pytest.raises(CheckpointError, match="decoder.extra.weight"):
        import_official_autovc({**official, "decoder.extra.weight": torch.zeros(1)})
    without_bias = {k: v for k, v in official.items() if k != "postnet.convolutions.2.0.conv.bias"}
    with pytest.raises(CheckpointError, match=r"postnet\.layers\.2\.conv\.bias"):
        import_official_autovc(without_bias)
    # Files from PyTorch < 0.4.1 have no BatchNorm batch counters at all: filled with 0.
    old = {k: v for k, v in official.items() if not k.endswith("num_batches_tracked")}
    converted = convert_official_state_dict(old, AutoVC(**TINY | dict(
        dim_neck=4, dim_pre=32, dim_conv=32, dim_lstm=48, dim_postnet=32), mel=OFFICIAL_MEL))
    assert int(converted["encoder.convs.0.norm.num_batches_tracked"]) == 0
    wrong = {**official, "decoder.linear_projection.linear_layer.bias": torch.zeros(7)}
    with pytest.raises(CheckpointError, match="wrong shapes"):
        import_official_autovc(wrong)


def test_official_mel_matches_make_spect(test_other):
    """OFFICIAL_MEL reproduces make_spect.py's features (after its high-pass and dither)."""
    librosa = pytest.importorskip("librosa")
    from scipy.signal import get_window
    from vc.audio import load_audio
    wav = load_audio(next(iter(test_other.values()))[0], 16000).samples[:16000].astype(np.float64)
    padded = np.pad(wav, 512, mode="reflect")
    starts = range(0, len(padded) - 1024 + 1, 256)
    frames = np.stack([padded[s:s + 1024] for s in starts])
    magnitude = np.abs(np.fft.rfft(get_window("hann", 1024, fftbins=True) * frames, n=1024))
    basis = librosa.filters.mel(sr=16000, n_fft=1024, fmin=90, fmax=7600, n_mels=80).T
    decibels = 20 * np.log10(np.maximum(1e-5, magnitude @ basis)) - 16
    expected = np.clip((decibels + 100) / 100, 0, 1).T
    ours = MelSpectrogram(OFFICIAL_MEL)(torch.from_numpy(wav).float()).numpy()
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, atol=2e-4)

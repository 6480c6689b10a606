"""HiFi-GAN: presets as published, the inverse-STFT head, saving, bounded-memory and batched
generation, refusal of foreign mels, and import of official weights."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vc.chunking import chunk_starts
from vc.errors import CheckpointError
from vc.hub import load_model
from vc.mel import MelConfig
from vc.pipeline import VoiceConverter, load_vocoder
from vc.vocoders import HiFiGAN, import_official_hifigan

pytestmark = pytest.mark.usefixtures("one_thread")


def test_presets_match_the_papers_sizes_and_lengths():
    # Parameter counts in Table 1 of the HiFi-GAN paper: V1 13.92M, V2 0.92M, V3 1.46M.
    published = {"v1": 13.92e6, "v2": 0.92e6, "v3": 1.46e6}
    for name, size in published.items():
        count = sum(p.numel() for p in HiFiGAN.from_preset(name).parameters())
        assert count == pytest.approx(size, rel=0.01), name
    mel = torch.randn(2, 80, 9) - 4
    for name in ("tiny", "fast", "v3"):
        model = HiFiGAN.from_preset(name).eval()
        with torch.inference_mode():
            wav = model(mel)
        assert wav.shape == (2, 9 * 256), name
        assert torch.isfinite(wav).all()
        assert model(mel[0]).shape == (9 * 256,)


def test_settings_that_cannot_work_are_refused():
    with pytest.raises(ValueError, match="multiply to 128"):
        HiFiGAN(upsample_rates=[8, 8, 2], upsample_kernel_sizes=[16, 16, 4])
    with pytest.raises(ValueError, match="must divide the mel hop"):
        HiFiGAN(upsample_rates=[3], upsample_kernel_sizes=[6], head="istft")
    with pytest.raises(ValueError, match="resblock"):
        HiFiGAN(resblock="3")


def test_save_and_load_give_the_same_vocoder(tmp_path):
    model = HiFiGAN.from_preset("fast").eval()
    folder = model.save_pretrained(tmp_path / "voc")
    loaded = load_model(folder)
    assert isinstance(loaded, HiFiGAN) and loaded.head == "istft" and loaded.mel == model.mel
    mel = torch.randn(80, 20) - 4
    with torch.inference_mode():
        assert torch.equal(model(mel), loaded.eval()(mel))
    assert load_vocoder(folder, MelConfig()).mel == MelConfig()


def test_a_vocoder_refuses_mels_made_with_other_settings(tmp_path):
    other = HiFiGAN.from_preset("tiny", mel=MelConfig(sample_rate=22050, fmax=11025.0))
    folder = other.save_pretrained(tmp_path / "voc22k")
    with pytest.raises(CheckpointError, match=r"sample_rate: 16000 vs 22050.*fmax"):
        load_vocoder(folder, MelConfig())
    from vc.models.vqvc import VQVC
    with pytest.raises(CheckpointError, match=r"sample_rate: 16000 vs 22050"):
        VoiceConverter(VQVC.from_preset("small"), vocoder=str(folder))
    converter_folder = VQVC.from_preset("small").save_pretrained(tmp_path / "vqvc")
    with pytest.raises(CheckpointError, match="not a vocoder"):
        load_vocoder(converter_folder, MelConfig())


@pytest.mark.parametrize("preset", ["tiny", "fast"])
def test_long_input_in_chunks_matches_the_whole(preset):
    torch.manual_seed(0)
    model = HiFiGAN.from_preset(preset).eval()
    mel = torch.randn(80, 700) * 2 - 5
    seen = []
    model.register_forward_pre_hook(lambda _m, args: seen.append(args[0].shape[-1]))
    with torch.inference_mode():
        whole = model(mel)
        seen.clear()
        chunked = model.generate(mel, chunk_frames=200, overlap_frames=16)
    assert max(seen) <= 200 and len(seen) > 3  # memory is bounded by the chunk, not the input
    assert chunked.shape == whole.shape
    # Away from the seams (the network sees a few frames either side) chunks give the whole.
    hop, spread = 256, whole.std()
    far = torch.ones_like(whole, dtype=torch.bool)
    starts = chunk_starts(700, 200, 16)
    for previous, start in zip(starts, starts[1:]):  # each overlap, widened by 60 frames
        far[(start - 60) * hop:(previous + 200 + 60) * hop] = False
    assert far.sum() > whole.numel() // 3
    assert (chunked - whole)[far].abs().max() < 1e-4 * max(1.0, float(spread))
    # Near the seams the cross-fade keeps the two close.
    assert F.cosine_similarity(chunked, whole, dim=0) > 0.97


def test_several_mels_run_as_one_batch_and_each_keeps_its_length():
    torch.manual_seed(0)
    model = HiFiGAN.from_preset("fast").eval()
    short, long = torch.randn(80, 150) - 5, torch.randn(80, 260) - 5
    outs = model.generate([short, long])
    assert [o.shape[-1] for o in outs] == [150 * 256, 260 * 256]
    alone = model.generate(short)
    # The short one is padded with silence in the batch; beyond the network's reach (about 50
    # frames at the frame rate) from its end, it is unchanged.
    assert torch.allclose(outs[0][:90 * 256], alone[:90 * 256], atol=1e-5)
    assert torch.allclose(outs[1], model.generate(long), atol=1e-5)


# ----------------------------------------------------------------------------- official import
class _OfficialResBlock2(nn.Module):
    """The official ResBlock2, written from jik876/hifi-gan models.py with the old weight-norm API."""

    def __init__(self, channels, kernel, dilations):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.utils.weight_norm(nn.Conv1d(channels, channels, kernel, 1, dilation=d,
                                           padding=(kernel * d - d) // 2)) for d in dilations)

    def forward(self, x):
        for c in self.convs:
            x = c(F.leaky_relu(x, 0.1)) + x
        return x


class _OfficialGenerator(nn.Module):
    def __init__(self, h):
        super().__init__()
        self.num_kernels = len(h["resblock_kernel_sizes"])
        ch = h["upsample_initial_channel"]
        self.conv_pre = nn.utils.weight_norm(nn.Conv1d(80, ch, 7, 1, padding=3))
        self.ups = nn.ModuleList(
            nn.utils.weight_norm(nn.ConvTranspose1d(ch // 2 ** i, ch // 2 ** (i + 1), k, u,
                                                    padding=(k - u) // 2))
            for i, (u, k) in enumerate(zip(h["upsample_rates"], h["upsample_kernel_sizes"])))
        self.resblocks = nn.ModuleList(
            _OfficialResBlock2(ch // 2 ** (i + 1), k, d)
            for i in range(len(self.ups))
            for k, d in zip(h["resblock_kernel_sizes"], h["resblock_dilation_sizes"]))
        self.conv_post = nn.utils.weight_norm(nn.Conv1d(ch // 2 ** len(self.ups), 1, 7, 1, padding=3))
        for p in self.parameters():  # not the official init: any weights must map over exactly
            p.data.normal_(0, 0.1)

    def forward(self, x):
        x = self.conv_pre(x)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, 0.1))
            x = sum(self.resblocks[i * self.num_kernels + j](x) for j in range(self.num_kernels)) \
                / self.num_kernels
        return torch.tanh(self.conv_post(F.leaky_relu(x)))


OFFICIAL_CONFIG = {  # the shape of the released config_v3.json, narrowed to keep the test quick
    "resblock": "2", "num_gpus": 0, "batch_size": 16, "learning_rate": 0.0002,
    "upsample_rates": [8, 8, 4], "upsample_kernel_sizes": [16, 16, 8],
    "upsample_initial_channel": 32, "resblock_kernel_sizes": [3, 5, 7],
    "resblock_dilation_sizes": [[1, 2], [2, 6], [3, 12]], "segment_size": 8192, "num_mels": 80,
    "num_freq": 1025, "n_fft": 1024, "hop_size": 256, "win_size": 1024, "sampling_rate": 22050,
    "fmin": 0, "fmax": 8000, "fmax_for_loss": None}


@pytest.mark.parametrize("weight_norm_removed", [False, True])
def test_official_generator_weights_import_exactly(tmp_path, weight_norm_removed):
    torch.manual_seed(0)
    official = _OfficialGenerator(OFFICIAL_CONFIG).eval()
    if weight_norm_removed:  # some releases are saved after remove_weight_norm()
        for module in official.modules():
            if hasattr(module, "weight_g"):
                nn.utils.remove_weight_norm(module)
    state = official.state_dict()
    assert ("conv_pre.weight" if weight_norm_removed else "conv_pre.weight_g") in state
    assert "resblocks.8.convs.1.bias" in state and "ups.2.bias" in state
    torch.save({"generator": state}, tmp_path / "g_02500000")
    (tmp_path / "config.json").write_text(json.dumps(OFFICIAL_CONFIG))
    model = import_official_hifigan(tmp_path / "g_02500000", tmp_path / "config.json")
    assert model.mel.sample_rate == 22050 and model.mel.fmax == 8000
    mel = torch.randn(1, 80, 12) - 4
    with torch.inference_mode():
        assert torch.allclose(model(mel), official(mel)[:, 0], atol=1e-5)
    # What is imported saves and loads like every voicelab model.
    again = load_model(model.save_pretrained(tmp_path / "imported"))
    assert torch.equal(again.eval()(mel), model(mel))


def test_import_names_what_does_not_fit(tmp_path):
    torch.save({"generator": {"conv_pre.weight_g": torch.zeros(3)}}, tmp_path / "g")
    (tmp_path / "config.json").write_text(json.dumps(OFFICIAL_CONFIG))
    with pytest.raises(CheckpointError, match="conv_pre"):
        import_official_hifigan(tmp_path / "g", tmp_path / "config.json")
    (tmp_path / "bad.json").write_text(json.dumps({"resblock": "1"}))
    with pytest.raises(CheckpointError, match="lacks"):
        import_official_hifigan(tmp_path / "g", tmp_path / "bad.json")


def test_the_shipped_vocoder_resynthesises_real_speech(real_speech):
    """checkpoints/hifigan-fast loads by name, fits the default mels, and turns a real clip of
    an unseen speaker back into audio of the same length whose mel is close to the original:
    an untrained generator is ~2.9 nats off here, one trained on too-short segments ~1.7; the
    shipped one must be within 0.4 (Griffin-Lim-32 is ~0.11; see its model card)."""
    from vc.audio import prepare_speech
    from vc.mel import MelSpectrogram
    vocoder = load_vocoder("hifigan-fast", MelConfig())
    clip = prepare_speech(sorted((real_speech / "vctk" / "p226").glob("*.wav"))[0], 16000)
    mel_fn = MelSpectrogram(MelConfig())
    mel = mel_fn(clip.to_tensor())
    wav = vocoder.generate(mel)
    assert wav.shape[-1] == mel.shape[-1] * 256 and torch.isfinite(wav).all()
    assert (mel_fn(wav)[:, :mel.shape[-1]] - mel).abs().mean() < 0.4

"""VQVC+ (Wu, Chen & Lee, Interspeech 2020): one-shot voice conversion with a U-Net whose skip
connections pass through vector quantisers.

The encoder down-samples the mel in a few levels; at every level the continuous features are
quantised with that level's codebook. The codes carry the content; what quantisation removes,
averaged over time (mean of continuous - quantised), is that level's *speaker* vector. The
decoder climbs back up from the coarsest level, adding at each level the quantised codes plus
a speaker vector, so converting is: source codes + target speaker vectors.

    model = VQVC.from_preset("small")
    target = model.speaker([reference_mel], None)              # (D,), D = sum(code_channels)
    source = model.speaker([mel], None)
    out = model.convert(mel[None], source[None], target[None])  # (1, n_mels, frames)

It learns from reconstruction alone (no speaker labels, no speaker encoder); the quantisers are
the information bottleneck that keeps the speaker out of the codes.

Options mirroring the variants of the authors' code (github.com/ericwudayi/SkipVQVC):
- ``normalize``: code vectors are L2-normalised per frame before matching (cosine codebook)
  and speaker vectors are L2-normalised and scaled to ``speaker_norm``, as model/vqvc+ does.
- ``resample``: model/vqvc+_resample coarsens every level's quantised code sequence in time
  (interpolate down by 4, repeat back up), so the codes cannot follow fast detail and the decoder
  must take more from the speaker path. Here: average-pool over windows of ``resample`` frames
  and repeat each mean ``resample`` times; 1 turns it off. (The seed's linear interpolation takes
  the mean of each window's two middle frames; the pool takes the whole window's mean.)
- ``instance_norm``: every level's features lose their per-utterance channel means and
  scales before quantisation (model/vqvc+ does this), so the codes see less of the speaker.
- ``mel_mean``/``mel_std``: input normalisation. The seed's trainers rescale log10 mels by
  (x + 2) / 2, i.e. natural-log mels by (x + 4.6) / 4.6, or by per-band dataset statistics.
  `set_normalization` sets either from data; they are buffers, saved with the weights.
"""
from __future__ import annotations

import math
from typing import Any, ClassVar, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..hub import as_dataclass
from ..mel import MelConfig
from .base import ContentFrames, ConversionModel, pad_to_multiple
from .quantize import Quantized, VectorQuantizer

RECON_LOSSES = ("l1", "mse")
# ln(10) * 2: natural-log mels scaled as the seed scales log10 mels, (log10 + 2) / 2.
SEED_LOG_SCALE = 2 * math.log(10)


def _conv_geometry(stride: int) -> tuple[int, int]:
    """Kernel and padding of a strided conv whose output is exactly frames / stride."""
    padding = (stride + 1) // 2
    return stride + 2 * padding, padding


class ConvBlock(nn.Module):
    """conv3 -> GroupNorm -> LeakyReLU -> conv3: (B, in, T) -> (B, out, T)."""

    def __init__(self, in_channels: int, out_channels: int, hidden: int, groups: int):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv1d(in_channels, hidden, 3, padding=1),
            nn.GroupNorm(groups, hidden),
            nn.LeakyReLU(0.2),
            nn.Conv1d(hidden, out_channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class EncoderLevel(nn.Module):
    """Strided conv down-sampling: (B, in, T) -> (B, out, T / stride)."""

    def __init__(self, in_channels: int, out_channels: int, hidden: int, stride: int):
        super().__init__()
        kernel, padding = _conv_geometry(stride)
        self.layers = nn.Sequential(
            nn.Conv1d(in_channels, hidden, kernel, stride=stride, padding=padding),
            nn.LeakyReLU(0.2),
            nn.Conv1d(hidden, out_channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class DecoderLevel(nn.Module):
    """One rung of the decoder: take in a level's codes (+ speaker), up-sample, refine, widen.

    (B, width, T_l) state + (B, code, T_l) codes -> (B, out, T_l * stride).
    """

    def __init__(self, code_channels: int, width: int, out_channels: int, hidden: int,
                 stride: int, groups: int):
        super().__init__()
        self.stride = stride
        self.inject = ConvBlock(code_channels, width, hidden, groups)
        self.refine = ConvBlock(width, width, hidden, groups)
        self.widen = ConvBlock(width, out_channels, hidden, groups)
        self.skip = nn.Conv1d(width, out_channels, 1)

    def forward(self, state: torch.Tensor | None, codes: torch.Tensor) -> torch.Tensor:
        injected = self.inject(codes)
        x = injected if state is None else state + injected
        if self.stride > 1:
            x = F.interpolate(x, scale_factor=self.stride, mode="nearest")
        x = x + self.refine(x)
        return self.skip(x) + self.widen(x)


class VQVC(ConversionModel):
    """VQVC+: a U-Net voice converter whose skip connections are vector-quantised.

    Args:
        mel: the mel settings the model works on (MelConfig or its dict; None: default).
        code_channels: per level, finest first, the size of its code vectors. The speaker
            vector is their concatenation, so `speaker` returns sum(code_channels) numbers.
        codebook_sizes: per level, the number of codewords.
        strides: per level, the down-sampling factor; mels are padded to their product.
        hidden: channels inside the encoder and decoder convolutions.
        groups: GroupNorm groups in the decoder (must divide `hidden`).
        beta: commitment-loss weight.
        ema: learn the codebooks by EMA (True) or by a codebook loss (False).
        ema_decay: EMA decay.
        dead_code_threshold: with ema, re-seed codewords whose EMA usage falls below this
            many vectors per batch from the batch's own vectors (0: off; needs ema).
        init_codebooks_from_data: set each codebook from encoder outputs on the first
            training batch (the random initial codebook is otherwise far from them).
        instance_norm: before quantising, remove each channel's time mean and divide by its
            time std, per utterance, as the seed does; the speaker vector still comes from
            the un-normalised features, so it keeps what the normalisation removed.
        normalize: L2-normalised code vectors and speaker vectors (see module docstring).
        speaker_norm: length of each level's speaker vector when `normalize`.
        resample: coarsen quantised codes over windows of this many frames (1: off).
        recon_loss: "l1" or "mse" reconstruction loss (computed on normalised mels).
        mel_mean, mel_std: input normalisation, a number or one per mel band (None: 0 and 1).
    """

    model_type: ClassVar[str] = "vqvc"
    speaker_input: ClassVar[str] = "mel"
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        # model/vqvc+ of the authors' code with its train.py: 80 mels, channel=512,
        # n_embed=128 (level i gets 128 // 2**(2 - i) codewords), three x2 levels whose codes
        # are 80 / 2**(i + 1) wide, codebook learned by loss, L1 reconstruction, latent
        # weight 0.1, instance-normalised then L2-normalised codes, speakers of length 1/3,
        # inputs scaled like (log10 + 2) / 2. Decoder blocks are conv-GroupNorm-conv at 512.
        "paper": dict(code_channels=[40, 20, 10], codebook_sizes=[32, 64, 128],
                      strides=[2, 2, 2], hidden=512, groups=4, beta=0.1, ema=False,
                      dead_code_threshold=0.0, instance_norm=True, normalize=True,
                      recon_loss="l1",
                      mel_mean=-SEED_LOG_SCALE, mel_std=SEED_LOG_SCALE),
        # The same shape at a quarter of the width: about 1 MB, trains on a couple of cores.
        "small": dict(code_channels=[40, 20, 10], codebook_sizes=[32, 64, 128],
                      strides=[2, 2, 2], hidden=128, groups=4, beta=0.25, ema=True,
                      dead_code_threshold=1.0, instance_norm=True, normalize=True,
                      recon_loss="l1",
                      mel_mean=-SEED_LOG_SCALE, mel_std=SEED_LOG_SCALE),
    }

    def __init__(self, *, mel: MelConfig | dict | None = None,
                 code_channels: Sequence[int] = (40, 20, 10),
                 codebook_sizes: Sequence[int] = (32, 64, 128),
                 strides: Sequence[int] = (2, 2, 2), hidden: int = 256, groups: int = 4,
                 beta: float = 0.25, ema: bool = True, ema_decay: float = 0.99,
                 dead_code_threshold: float = 1.0, init_codebooks_from_data: bool = True,
                 instance_norm: bool = True, normalize: bool = True,
                 speaker_norm: float = 1 / 3, resample: int = 1, recon_loss: str = "l1",
                 mel_mean: float | Sequence[float] | None = None,
                 mel_std: float | Sequence[float] | None = None):
        super().__init__()
        self.mel = as_dataclass(MelConfig, mel)
        self.init_kwargs["mel"] = self.mel
        code_channels, codebook_sizes = list(code_channels), list(codebook_sizes)
        strides = list(strides)
        if not (len(code_channels) == len(codebook_sizes) == len(strides) >= 1):
            raise ValueError("code_channels, codebook_sizes and strides need one entry per level; "
                             f"got {len(code_channels)}, {len(codebook_sizes)}, {len(strides)}")
        if min(strides) < 1 or min(code_channels) < 1:
            raise ValueError(f"strides and code_channels must be positive: {strides}, "
                             f"{code_channels}")
        if hidden % groups:
            raise ValueError(f"groups ({groups}) must divide hidden ({hidden})")
        if recon_loss not in RECON_LOSSES:
            raise ValueError(f"recon_loss must be one of {RECON_LOSSES}, got {recon_loss!r}")
        if dead_code_threshold > 0 and not ema:
            raise ValueError("dead_code_threshold needs ema=True (it reads the EMA usage); "
                             "set it to 0 for a loss-learned codebook")
        if resample < 1:
            raise ValueError(f"resample must be >= 1 (1 is off), got {resample}")
        self.code_channels, self.strides = code_channels, strides
        self.normalize, self.speaker_norm = normalize, speaker_norm
        self.instance_norm = instance_norm
        self.resample, self.recon_loss = resample, recon_loss
        self.frame_multiple = math.prod(strides)
        n_mels = self.mel.n_mels

        inputs = [n_mels, *code_channels[:-1]]
        self.encoder = nn.ModuleList(
            EncoderLevel(i, o, hidden, s) for i, o, s in zip(inputs, code_channels, strides))
        self.quantizers = nn.ModuleList(
            VectorQuantizer(k, c, beta=beta, ema=ema, decay=ema_decay, normalize=normalize,
                            init_from_data=init_codebooks_from_data,
                            restart_threshold=dead_code_threshold)
            for k, c in zip(codebook_sizes, code_channels))
        # decoder[l] turns level l's state into level l-1's width (n_mels below level 0).
        self.decoder = nn.ModuleList(
            DecoderLevel(c, c, o, hidden, s, groups)
            for c, o, s in zip(code_channels, inputs, strides))

        self.register_buffer("mel_mean", self._band_values(mel_mean, 0.0, "mel_mean"))
        self.register_buffer("mel_std", self._band_values(mel_std, 1.0, "mel_std"))

    # ---------------------------------------------------------------- helpers
    @property
    def speaker_dim(self) -> int:
        """Length D of a speaker vector: the per-level vectors concatenated."""
        return sum(self.code_channels)

    def _band_values(self, value: Any, default: float, name: str) -> torch.Tensor:
        n_mels = self.mel.n_mels
        tensor = torch.full((n_mels,), default) if value is None else \
            torch.as_tensor(value, dtype=torch.float32).reshape(-1)
        if tensor.numel() == 1:
            tensor = tensor.expand(n_mels).clone()
        if tensor.numel() != n_mels:
            raise ValueError(f"{name} needs 1 or n_mels ({n_mels}) values, got {tensor.numel()}")
        if name == "mel_std" and bool((tensor <= 0).any()):
            raise ValueError("mel_std must be positive")
        return tensor.float()

    def set_normalization(self, mean: float | Sequence[float] | torch.Tensor,
                          std: float | Sequence[float] | torch.Tensor) -> None:
        """Set the input normalisation (one number or one per band); saved with the weights.

        Typically the per-band mean and std of the training mels over all frames (see
        `mel_statistics`). Changing it after training invalidates the model.
        """
        mean_t = self._band_values(torch.as_tensor(mean).detach().cpu(), 0.0, "mel_mean")
        std_t = self._band_values(torch.as_tensor(std).detach().cpu(), 1.0, "mel_std")
        self.mel_mean.copy_(mean_t)
        self.mel_std.copy_(std_t)
        # Keep config.json in step with the buffers, so the config alone describes the model.
        self.init_kwargs["mel_mean"] = [round(float(v), 6) for v in mean_t]
        self.init_kwargs["mel_std"] = [round(float(v), 6) for v in std_t]

    def normalize_mel(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, T) log-mel -> the normalised scale the network works on."""
        return (mel - self.mel_mean[:, None]) / self.mel_std[:, None]

    def denormalize_mel(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mel_std[:, None] + self.mel_mean[:, None]

    def _split_speaker(self, speaker: torch.Tensor) -> list[torch.Tensor]:
        """(B, D) -> per level (B, code_channels[l], 1)."""
        if speaker.shape[-1] != self.speaker_dim:
            raise ValueError(f"speaker vectors must have {self.speaker_dim} values (the sum of "
                             f"code_channels), got shape {tuple(speaker.shape)}")
        return [part[..., None] for part in torch.split(speaker, self.code_channels, dim=-1)]

    def _coarsen(self, codes: torch.Tensor) -> torch.Tensor:
        """The `resample` variant: (B, C, T) -> window means held for `resample` frames."""
        if self.resample == 1:
            return codes
        frames = codes.shape[-1]
        means = F.avg_pool1d(codes, self.resample, ceil_mode=True)  # partial last window ok
        return means.repeat_interleave(self.resample, dim=-1)[..., :frames]

    def _quantizer_input(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Encoder output (B, C, T) -> the vectors the quantiser matches (B, C, T); `weights`
        (B or 1, 1, T) marks real frames for the instance-norm statistics."""
        if self.instance_norm:
            centred = x - _time_mean(x, weights)
            x = centred / (_time_mean(centred.pow(2), weights) + 1e-5).sqrt()
        return F.normalize(x, dim=1) if self.normalize else x

    def _levels(self, x: torch.Tensor, lengths: torch.Tensor | None = None
                ) -> list[tuple[torch.Tensor, Quantized, torch.Tensor]]:
        """Run the encoder and quantisers on normalised mels x (B, n_mels, T), T a multiple
        of `frame_multiple`.

        Args:
            lengths: real frames per item (B,) before padding; padded frames are left out of
                the speaker means and the quantiser statistics. None: all frames are real.

        Returns:
            per level, finest first: (features (B, C, T_l) as quantised, i.e. normalised when
            `normalize`; the quantiser's output with channel-first `quantized` (B, C, T_l);
            the speaker vector (B, C)).
        """
        levels = []
        for encoder, quantizer, stride in zip(self.encoder, self.quantizers, self.strides):
            x = encoder(x)
            frames = x.shape[-1]
            if lengths is None:
                mask, weights = None, x.new_ones(1, 1, frames)
            else:
                lengths = torch.div(lengths + stride - 1, stride, rounding_mode="floor")
                mask = torch.arange(frames, device=x.device)[None, :] < lengths[:, None]
                weights = mask[:, None, :].to(x.dtype)

            features = self._quantizer_input(x, weights)
            out = quantizer(features.transpose(1, 2), mask=mask)
            out.quantized = out.quantized.transpose(1, 2)
            # Speaker = what quantisation removed (encoder output - codes), averaged over real
            # time. The codeword side is detached so the encoder, not the codebook, learns it.
            speaker = _time_mean(x - out.quantized.detach(), weights)[..., 0]
            if self.normalize:
                speaker = F.normalize(speaker, dim=-1) * self.speaker_norm
            levels.append((features, out, speaker))
        return levels

    def _decode_normalized(self, content: Sequence[torch.Tensor],
                           speakers: Sequence[torch.Tensor]) -> torch.Tensor:
        """Per-level codes (B, C_l, T_l) + speaker (B, C_l, 1) -> normalised mel (B, n_mels, T)."""
        state = None
        for level in reversed(range(len(self.decoder))):
            state = self.decoder[level](state, content[level] + speakers[level])
        return state

    # -------------------------------------------------------------- interface
    def speaker(self, mels: Sequence[torch.Tensor], embedding: torch.Tensor | None = None
                ) -> torch.Tensor:
        """Speaker vector (D,) from reference mels [(n_mels, frames), ...]; several are
        averaged. `embedding` (GE2E) is ignored: VQVC+ takes the speaker from the mels."""
        if isinstance(mels, torch.Tensor) and mels.dim() == 2:
            mels = [mels]
        if len(mels) == 0:
            raise ValueError("speaker() needs at least one reference mel")
        vectors = []
        for mel in mels:
            if mel.dim() != 2 or mel.shape[0] != self.mel.n_mels:
                raise ValueError(f"reference mels must be (n_mels={self.mel.n_mels}, frames), "
                                 f"got {tuple(mel.shape)}")
            x = pad_to_multiple(self.normalize_mel(mel[None]), self.frame_multiple)
            lengths = torch.tensor([mel.shape[-1]], device=mel.device)
            levels = self._levels(x, lengths)
            vectors.append(torch.cat([speaker for _, _, speaker in levels], dim=-1)[0])
        if len(vectors) == 1:
            return vectors[0]
        average = torch.stack(vectors).mean(0)
        if self.normalize:  # keep each level at speaker_norm, as for a single reference
            average = torch.cat([F.normalize(part, dim=-1) * self.speaker_norm
                                 for part in torch.split(average, self.code_channels)])
        return average

    def encode(self, mel: torch.Tensor, speaker: torch.Tensor | None = None
               ) -> list[torch.Tensor]:
        """Quantised codes of `mel` (B, n_mels, T), T a multiple of `frame_multiple`: per
        level, finest first, (B, code_channels[l], T / prod(strides[:l+1])). `speaker` is not
        needed (quantisation takes the speaker out)."""
        levels = self._levels(self.normalize_mel(mel))
        return [self._coarsen(out.quantized) for _, out, _ in levels]

    def decode(self, content: Sequence[torch.Tensor], speaker: torch.Tensor) -> torch.Tensor:
        """Mel (B, n_mels, T) of per-level codes `content` (from `encode`) in the voice of
        `speaker` (B, D)."""
        return self.denormalize_mel(
            self._decode_normalized(content, self._split_speaker(speaker)))

    def content_frames(self, mel: torch.Tensor) -> ContentFrames:
        """Finest-level content of one mel (n_mels, T): continuous features (T', C_0) as they
        enter the quantiser, their codebook ids (T',), at frame_rate / strides[0]."""
        frames = mel.shape[-1]
        x = pad_to_multiple(self.normalize_mel(mel[None]), self.frame_multiple)
        first = self.encoder[0](x)
        keep = -(-frames // self.strides[0])  # frames that cover real input
        weights = (torch.arange(first.shape[-1], device=first.device) < keep).to(first.dtype)
        features = self._quantizer_input(first, weights[None, None])
        features = features[0, :, :keep].transpose(0, 1)
        codes = self.quantizers[0].nearest(features)
        return ContentFrames(features=features, frame_rate=self.mel.frame_rate / self.strides[0],
                             codes=codes)

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Reconstruction of each utterance from its own codes and speaker vectors, plus the
        quantisers' losses. "recon" is reported in log-mel units (the loss itself is on the
        normalised scale, as the seed trains)."""
        mel = batch["mel"]
        frames = mel.shape[-1]
        target = self.normalize_mel(mel)
        x = pad_to_multiple(target, self.frame_multiple)
        levels = self._levels(x)
        content = [self._coarsen(out.quantized) for _, out, _ in levels]
        speakers = [speaker[..., None] for _, _, speaker in levels]
        output = self._decode_normalized(content, speakers)[..., :frames]
        criterion = F.l1_loss if self.recon_loss == "l1" else F.mse_loss
        recon = criterion(output, target)
        quantizer_loss = sum(out.loss for _, out, _ in levels)
        total = recon + quantizer_loss
        with torch.no_grad():
            parts = {
                "recon": criterion(self.denormalize_mel(output), mel).item(),
                "recon_normalized": recon.item(),
                "commit": sum(out.commitment for _, out, _ in levels).item(),
                "perplexity": sum(out.perplexity for _, out, _ in levels).item() / len(levels),
            }
            if not self.quantizers[0].ema:
                parts["codebook"] = sum(out.codebook_loss for _, out, _ in levels).item()
            for index, (_, out, _) in enumerate(levels):
                parts[f"perplexity_{index}"] = out.perplexity.item()
        return total, parts


def _time_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted mean over the last axis: (B, C, T), weights (B or 1, 1, T) -> (B, C, 1)."""
    weights = weights.expand(values.shape[0], 1, -1)
    return (values * weights).sum(-1, keepdim=True) / weights.sum(-1, keepdim=True).clamp(min=1)


def mel_statistics(mels: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-band mean and std (n_mels,) over all frames of mels [(n_mels, frames) or
    (B, n_mels, frames), ...], for `VQVC.set_normalization`."""
    frames = torch.cat([m.transpose(-2, -1).reshape(-1, m.shape[-2]) for m in mels])
    return frames.mean(0), frames.std(0).clamp(min=1e-3)

"""Phonetic voice conversion: a phone recogniser's posteriorgram (PPG) carries what is said, a
decoder conditioned on a GE2E embedding says it in the target's voice (PPG-VC, Sun et al., 2016).

    model = PhoneticVC.from_preset("small")
    content = model.encode(mel, source)               # PhoneticContent: posteriors, pitch, voicing
    out = model.decode(content, target)               # (B, n_mels, T) in the target voice

The *content encoder* is trained on frame phone labels (exact alignments of the synthetic corpus,
forced alignments of real speech) with per-utterance normalised mels and random vocal-tract
warping of its input, so its posteriors over the 40 phones of `vc.data.phones` carry as little
of the speaker as a phone recogniser can. It also predicts the melody: log-F0 as a z-score over
the utterance and a voicing probability (targets from pYIN), which hold no register either. The
*decoder* learns to render those (detached: it cannot teach the encoder to leak the speaker)
plus a speaker embedding back into the utterance's mel. Converting feeds it the source's
content and the target's embedding; the output keeps the source's timing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..data.phones import PHONES
from ..hub import as_dataclass
from ..mel import MelConfig
from .base import ContentFrames, ConversionModel, unit_embedding
from .vqvae import ChannelNorm


@dataclass
class PhoneticContent:
    """What `PhoneticVC.encode` returns for a batch: posteriors (B, n_phones, T), z-scored
    log-F0 (B, T) and voicing probability (B, T)."""

    posteriors: torch.Tensor
    log_f0: torch.Tensor
    voicing: torch.Tensor


class ConvBlock(nn.Module):
    """x + conv1x1(GELU(norm(conv_k(x) + condition))) on (B, C, T); keeps the length."""

    def __init__(self, channels: int, kernel: int = 5):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel, padding=kernel // 2)
        self.norm = ChannelNorm(channels)
        self.out = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv(x)
        if condition is not None:
            h = h + condition
        return x + self.out(F.gelu(self.norm(h)))


def utterance_normalized(mel: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Each band of mel (B, n_mels, T) to zero mean and unit variance over time: removes the
    channel's and much of the speaker's average spectrum before recognition."""
    mean = mel.mean(dim=-1, keepdim=True)
    std = mel.std(dim=-1, keepdim=True).clamp_min(eps)
    return (mel - mean) / std


def warp_frequency(mel: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Stretch each mel (B, n_mels, T) along the band axis by its factor (B,): band m takes
    the value at band m / factor (linearly interpolated, edges held). A factor above 1 moves
    formants up, as a shorter vocal tract does."""
    batch, bands, frames = mel.shape
    positions = torch.arange(bands, device=mel.device, dtype=mel.dtype)[None, :] / factors[:, None]
    positions = positions.clamp(0, bands - 1)
    low = positions.floor().long()
    high = (low + 1).clamp(max=bands - 1)
    weight = (positions - low)[..., None]
    gather = lambda index: mel.gather(1, index[..., None].expand(-1, -1, frames))
    return gather(low) * (1 - weight) + gather(high) * weight


def with_known_phones(posteriors: torch.Tensor, phones: torch.Tensor, use: torch.Tensor) -> torch.Tensor:
    """posteriors (B, n_phones, T) with the frames where `use` (B, T) is true replaced by the
    one-hot vectors of `phones` (B, T): what the decoder gets from a known transcript."""
    onehot = F.one_hot(phones.clamp_min(0).long(), posteriors.shape[1]).transpose(1, 2).to(posteriors.dtype)
    return torch.where(use[:, None], onehot, posteriors)


class ContentEncoder(nn.Module):
    """Mel (B, n_mels, T) -> phone logits (B, n_phones, T), log-F0 z-score (B, T) and voicing
    logit (B, T)."""

    def __init__(self, n_mels: int, n_phones: int, channels: int, layers: int, rnn: int):
        super().__init__()
        self.n_phones = n_phones
        self.inp = nn.Sequential(nn.Conv1d(n_mels, channels, 5, padding=2), ChannelNorm(channels), nn.GELU())
        self.blocks = nn.ModuleList(ConvBlock(channels) for _ in range(layers))
        self.rnn = nn.GRU(channels, rnn, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * rnn, n_phones + 2)

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.inp(utterance_normalized(mel))
        for block in self.blocks:
            h = block(h)
        h, _ = self.rnn(h.transpose(1, 2))
        out = self.out(h).transpose(1, 2)
        return out[:, :self.n_phones], out[:, self.n_phones], out[:, self.n_phones + 1]


class Decoder(nn.Module):
    """Content (B, n_phones + 2, T) and speaker (B, speaker_dim) -> mel (B, n_mels, T), with a
    residual post-net."""

    def __init__(self, content_dim: int, speaker_dim: int, n_mels: int, channels: int, layers: int,
                 rnn: int, postnet_channels: int):
        super().__init__()
        self.inp = nn.Sequential(nn.Conv1d(content_dim, channels, 5, padding=2), nn.GELU())
        self.speaker = nn.Linear(speaker_dim, channels)
        self.blocks = nn.ModuleList(ConvBlock(channels) for _ in range(layers))
        self.rnn = nn.GRU(channels, rnn, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * rnn, n_mels)
        self.postnet = nn.Sequential(
            nn.Conv1d(n_mels, postnet_channels, 5, padding=2), ChannelNorm(postnet_channels), nn.Tanh(),
            nn.Conv1d(postnet_channels, postnet_channels, 5, padding=2), ChannelNorm(postnet_channels),
            nn.Tanh(), nn.Conv1d(postnet_channels, n_mels, 5, padding=2))

    def forward(self, content: torch.Tensor, speaker: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mel before the post-net, mel after it), both normalised."""
        return self.head(self.hidden(content, speaker))

    def hidden(self, content: torch.Tensor, speaker: torch.Tensor) -> torch.Tensor:
        """The GRU's output (B, T, 2 * rnn): everything before the output layer."""
        condition = self.speaker(speaker)[..., None]
        h = self.inp(content)
        for block in self.blocks:
            h = block(h, condition)
        return self.rnn(h.transpose(1, 2))[0]

    def head(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The output layer and post-net on `hidden`: (coarse mel, mel after the post-net)."""
        coarse = self.out(hidden).transpose(1, 2)
        return coarse, coarse + self.postnet(coarse)

    def head_only_learns(self) -> bool:
        """Whether only the output layer and post-net have trainable weights (adapting them needs
        the rest of the decoder run once, not at every step)."""
        return not any(p.requires_grad for m in (self.inp, self.speaker, self.blocks, self.rnn)
                       for p in m.parameters())


class PhoneticVC(ConversionModel):
    """PPG voice conversion: phone posteriors + normalised pitch, decoded with a GE2E embedding.

    Args:
        mel: the mel settings the model reads and writes (default `MelConfig()`).
        mel_mean, mel_std: constants normalising the decoder's output log-mels.
        n_phones: size of the phone set (vc.data.phones.PHONES).
        encoder_channels, encoder_layers, encoder_rnn: content encoder width, residual conv
            blocks, and GRU size per direction.
        decoder_channels, decoder_layers, decoder_rnn, postnet_channels: the decoder's.
        embedding_dim: size of the GE2E speaker embedding.
        warp: training-time vocal-tract warping of the encoder input, factors uniform in
            [1 - warp, 1 + warp] (0 disables).
        temperature: posteriors are softmax(logits / temperature) for the decoder (above 1
            keeps more of the recogniser's uncertainty, which helps where it is wrong).
        pitch_weight, voicing_weight: loss weights of the melody targets.
        label_input: in training, the fraction of utterances whose decoder input is the one-hot
            phones of their labelled frames (the aligned transcript) instead of the recogniser's
            posteriors, so the decoder also learns the input transcript guidance gives it
            (`encode(..., phones=)`); 0 trains on posteriors only.
    """

    model_type = "ppgvc"
    frame_targets: ClassVar[tuple[str, ...]] = ("phones", "f0")
    uses_source_speaker: ClassVar[bool] = False
    accepts_phone_labels: ClassVar[bool] = True
    # what vc.adaptation trains on a reference: the decoder; the recogniser stays as trained
    adaptable_modules: ClassVar[tuple[str, ...]] = ("decoder",)
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "small": dict(encoder_channels=192, encoder_layers=4, encoder_rnn=128, decoder_channels=192,
                      decoder_layers=4, decoder_rnn=160, postnet_channels=192),
        "base": dict(encoder_channels=256, encoder_layers=5, encoder_rnn=192, decoder_channels=256,
                     decoder_layers=5, decoder_rnn=224, postnet_channels=256),
        "tiny": dict(encoder_channels=32, encoder_layers=1, encoder_rnn=16, decoder_channels=32,
                     decoder_layers=1, decoder_rnn=16, postnet_channels=16),
    }

    def __init__(self, *, mel: MelConfig | dict | None = None, mel_mean: float = -5.4, mel_std: float = 2.2,
                 n_phones: int = len(PHONES), encoder_channels: int = 192, encoder_layers: int = 4,
                 encoder_rnn: int = 128, decoder_channels: int = 192, decoder_layers: int = 4,
                 decoder_rnn: int = 160, postnet_channels: int = 192, embedding_dim: int = 256,
                 warp: float = 0.12, temperature: float = 1.0, pitch_weight: float = 0.5,
                 voicing_weight: float = 0.2, label_input: float = 0.0):
        super().__init__()
        self.mel = as_dataclass(MelConfig, mel)
        self.init_kwargs["mel"] = self.mel
        problems = []
        if n_phones != len(PHONES):
            problems.append(f"n_phones must be {len(PHONES)} (vc.data.phones.PHONES), got {n_phones}")
        if not 0.0 <= warp < 0.5:
            problems.append(f"warp must be in [0, 0.5), got {warp}")
        if temperature <= 0 or mel_std <= 0:
            problems.append("temperature and mel_std must be positive")
        if not 0.0 <= label_input <= 1.0:
            problems.append(f"label_input must be in [0, 1], got {label_input}")
        if problems:
            raise ValueError("invalid PhoneticVC settings: " + "; ".join(problems))
        self.mel_mean, self.mel_std = float(mel_mean), float(mel_std)
        self.embedding_dim, self.warp, self.temperature = embedding_dim, warp, temperature
        self.pitch_weight, self.voicing_weight = pitch_weight, voicing_weight
        self.label_input = float(label_input)
        self.encoder = ContentEncoder(self.mel.n_mels, n_phones, encoder_channels, encoder_layers, encoder_rnn)
        self.decoder = Decoder(n_phones + 2, embedding_dim, self.mel.n_mels, decoder_channels,
                               decoder_layers, decoder_rnn, postnet_channels)

    # ------------------------------------------------------------------ speakers
    def speaker(self, mels: Sequence[torch.Tensor], embedding: torch.Tensor | None) -> torch.Tensor:
        """The reference's unit GE2E embedding (embedding_dim,); `mels` are not used."""
        return unit_embedding(embedding, self.embedding_dim, self._device, "PhoneticVC")

    # ------------------------------------------------------------ encode/decode
    def encode(self, mel: torch.Tensor, speaker: torch.Tensor | None = None,
               phones: torch.Tensor | None = None) -> PhoneticContent:
        """Content of `mel` (B, n_mels, T); `speaker` is ignored (the encoder never sees it).

        `phones` (B, T), indices of PHONES with -1 where unknown, replaces the recogniser's
        posteriors by one-hot vectors of the known phones (e.g. a forced-aligned transcript,
        `vc.transcript_phones`); the melody always comes from the encoder.
        """
        logits, log_f0, voicing = self.encoder(self._check_mel(mel))
        posteriors = torch.softmax(logits / self.temperature, dim=1)
        if phones is not None:
            if phones.shape != posteriors[:, 0].shape:
                raise ValueError(f"phone labels of shape {tuple(phones.shape)} do not match the mel's "
                                 f"(batch, frames) {tuple(posteriors[:, 0].shape)}")
            posteriors = with_known_phones(posteriors, phones, phones >= 0)
        return PhoneticContent(posteriors, log_f0, torch.sigmoid(voicing))

    def convert(self, mel: torch.Tensor, source: torch.Tensor, target: torch.Tensor,
                phones: torch.Tensor | None = None) -> torch.Tensor:
        """`mel` (B, n_mels, T) re-spoken by `target`, optionally with known `phones` (see encode)."""
        return self.decode(self.encode(mel, source, phones), target)

    def decode(self, content: PhoneticContent, speaker: torch.Tensor) -> torch.Tensor:
        """Log-mel (B, n_mels, T) of `content` spoken by `speaker` (B, embedding_dim)."""
        if speaker.dim() != 2 or speaker.shape != (content.posteriors.shape[0], self.embedding_dim):
            raise ValueError(f"expected speakers of shape ({content.posteriors.shape[0]}, "
                             f"{self.embedding_dim}), got {tuple(speaker.shape)}")
        _, mel = self.decoder(self._decoder_input(content), self._scaled(speaker))
        return mel * self.mel_std + self.mel_mean

    def content_frames(self, mel: torch.Tensor) -> ContentFrames:
        """Phone posteriors (T, n_phones) of one mel (n_mels, T) at the mel frame rate, with the
        most likely phone per frame as its codes."""
        if mel.dim() != 2:
            raise ValueError(f"content_frames takes one mel (n_mels, frames), got shape {tuple(mel.shape)}")
        with torch.no_grad():
            posteriors = self.encode(mel[None]).posteriors[0].T
        return ContentFrames(posteriors, self.mel.frame_rate, posteriors.argmax(dim=-1))

    # --------------------------------------------------------------- adaptation
    def adaptation_example(self, mel: torch.Tensor, phones: torch.Tensor | None,
                           embedding: torch.Tensor, segment_frames: int = 128) -> dict[str, torch.Tensor]:
        """A reference clip as an example for `vc.adaptation.ReferenceAdaptation`: its content
        as conversion reads it (mel (n_mels, T), known frame phones (T,) with -1 where unknown,
        or None for the recogniser's own), its normalised mel and its unit GE2E embedding.

        The clip is cut into segments of `segment_frames` (the last one overlapping its
        neighbour) that train as one batch: the decoder's GRU then runs over 2 s instead of
        the whole clip, several times faster on a CPU."""
        mel = self._check_mel(mel[None] if mel.dim() == 2 else mel)
        with torch.no_grad():
            content = self._decoder_input(self.encode(mel, phones=None if phones is None else phones.reshape(1, -1)))
            target = (mel - self.mel_mean) / self.mel_std
            frames = mel.shape[-1]
            length = min(segment_frames, frames)
            starts = list(range(0, frames - length + 1, length))
            if starts[-1] + length < frames:
                starts.append(frames - length)
            speaker = F.normalize(torch.as_tensor(embedding, dtype=mel.dtype, device=mel.device).reshape(1, -1), dim=-1)
            return {"content": torch.cat([content[..., s:s + length] for s in starts]),
                    "target": torch.cat([target[..., s:s + length] for s in starts]),
                    "speaker": self._scaled(speaker).expand(len(starts), -1)}

    def adaptation_loss(self, examples: Sequence[dict[str, torch.Tensor]]) -> torch.Tensor:
        """The decoder's reconstruction loss (log-mel L1 before and after the post-net, in
        normalised units, as in training) over the reference clips, each weighted by its frames."""
        total, frames = 0.0, 0
        for example in examples:
            if self.decoder.head_only_learns():
                if "hidden" not in example:  # the frozen part's output, computed once per adaptation
                    with torch.no_grad():
                        example["hidden"] = self.decoder.hidden(example["content"], example["speaker"])
                coarse, fine = self.decoder.head(example["hidden"])
            else:
                coarse, fine = self.decoder(example["content"], example["speaker"])
            target = example["target"]
            total = total + ((fine - target).abs().sum() + (coarse - target).abs().sum()) / target.shape[1]
            frames += target.shape[0] * target.shape[-1]
        return total / frames

    # ----------------------------------------------------------------- training
    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Phone cross-entropy (frames with labels) + melody losses + mel reconstruction from
        the detached content, for a batch {"mel", "embedding", "phones" (B, T) with -1 where
        unlabelled, "lf0", "voiced" (B, T)}.

        Returns the loss and {"recon": log-mel L1 after the post-net, "phone_ce", "phone_acc"
        (over labelled frames), "pitch" (z-score L1 over voiced frames), "voicing" (BCE)}.
        """
        mel = self._check_mel(batch["mel"])
        encoder_input = mel
        if self.training and self.warp > 0:
            factors = 1 + (torch.rand(mel.shape[0], device=mel.device) * 2 - 1) * self.warp
            encoder_input = warp_frequency(mel, factors)
        logits, log_f0, voicing = self.encoder(encoder_input)
        phones = batch["phones"].long()
        labelled = phones >= 0
        if labelled.any():
            phone_ce = F.cross_entropy(logits, phones.clamp_min(0), reduction="none")[labelled].mean()
            accuracy = (logits.argmax(1) == phones)[labelled].float().mean().item()
        else:
            phone_ce, accuracy = logits.sum() * 0.0, float("nan")
        voiced = batch["voiced"].float()
        pitch = ((log_f0 - batch["lf0"].float()).abs() * voiced).sum() / voiced.sum().clamp_min(1.0)
        voicing_loss = F.binary_cross_entropy_with_logits(voicing, voiced)

        posteriors = torch.softmax(logits.detach() / self.temperature, dim=1)
        if self.training and self.label_input > 0:
            chosen = torch.rand(phones.shape[0], 1, device=phones.device) < self.label_input
            posteriors = with_known_phones(posteriors, phones, chosen & labelled)
        content = PhoneticContent(posteriors, log_f0.detach(), torch.sigmoid(voicing.detach()))
        coarse, fine = self.decoder(self._decoder_input(content), self._scaled(
            F.normalize(batch["embedding"].float(), dim=-1)))
        target = (mel - self.mel_mean) / self.mel_std
        recon_norm = (fine - target).abs().mean() + (coarse - target).abs().mean()
        total = phone_ce + self.pitch_weight * pitch + self.voicing_weight * voicing_loss + recon_norm
        return total, {"recon": ((fine - target).abs().mean() * self.mel_std).item(),
                       "phone_ce": phone_ce.item(), "phone_acc": accuracy, "pitch": pitch.item(),
                       "voicing": voicing_loss.item()}

    # ---------------------------------------------------------------- internals
    @property
    def _device(self) -> torch.device:
        return self.decoder.out.weight.device

    def _scaled(self, speaker: torch.Tensor) -> torch.Tensor:
        return speaker * math.sqrt(self.embedding_dim)  # unit-norm entries ~1/16 -> unit RMS

    @staticmethod
    def _decoder_input(content: PhoneticContent) -> torch.Tensor:
        pitch = content.log_f0 * content.voicing  # unvoiced frames carry no melody
        return torch.cat([content.posteriors, pitch[:, None], content.voicing[:, None]], dim=1)

    def _check_mel(self, mel: torch.Tensor) -> torch.Tensor:
        if mel.dim() != 3 or mel.shape[1] != self.mel.n_mels:
            raise ValueError(f"expected mels (batch, {self.mel.n_mels}, frames), got shape {tuple(mel.shape)}")
        return mel

"""A text-to-mel synthesizer with explicit phone durations, conditioned on a GE2E embedding:
the second stage of SV2TTS (Jia et al., 2018) with a non-autoregressive model in place of
Tacotron 2 (FastSpeech 2 style: Ren et al., 2021; all-convolutional as in SpeedySpeech).

    model = DurationSynthesizer.from_preset("small")
    tokens = model.tokens(vc.text.text_to_ids("Hello there."))   # phones and pauses
    mel, frames = model.synthesize(tokens, embedding, rate=1.0)  # (n_mels, T), (N,) frames each

Why durations instead of attention: a phone is never skipped or repeated, because every phone
gets a whole number of frames; training needs no alignment to be learnt (the corpus builder's
alignments and pocketsphinx's forced alignments give them exactly), and a convolutional stack
trains and runs quickly on a CPU. Each phone also gets a predicted pitch level (the mean
z-scored log-F0 of its voiced frames, so it carries intonation but not the speaker's register),
which keeps the output from sounding flat.

Input tokens are `vc.text.SYMBOLS` ids of phones and "<sil>" pauses; `tokens()` turns the
text front end's output (phones, word spaces, punctuation) into them.
"""
from __future__ import annotations

from typing import Any, ClassVar, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..data.phones import SILENCE, frame_index, to_arpabet
from ..hub import HubModel, as_dataclass
from ..mel import MelConfig
from ..text import PUNCTUATION, SYMBOL_INDEX, SYMBOLS, TextError
from .base import unit_embedding
from .ppgvc import ConvBlock
from .vqvae import ChannelNorm

PAD, SIL = SYMBOL_INDEX["<pad>"], SYMBOL_INDEX["<sil>"]
_SPACE = SYMBOL_INDEX[" "]
_PAUSES = {SYMBOL_INDEX[p] for p in PUNCTUATION}


def alignment_tokens(segments, frames: int, frame_rate: float, phoneset: str = "arpabet"
                     ) -> tuple[list[int], list[int]]:
    """Synthesizer tokens and their lengths in frames from an utterance's phone alignment.

    Frames are assigned as `vc.data.phones.frame_labels` assigns them (a frame belongs to the
    segment holding its centre), so the durations sum to `frames` and line up with the mel.
    Silences, gaps and unmapped markers become "<sil>"; neighbouring pauses merge.
    """
    tokens: list[int] = []
    lengths: list[int] = []

    def add(token: int, count: int) -> None:
        if count <= 0:
            return
        if token == SIL and tokens and tokens[-1] == SIL:
            lengths[-1] += count
        else:
            tokens.append(token)
            lengths.append(count)

    cursor = 0
    for segment in segments:
        phone = to_arpabet(segment.phone, phoneset)
        first = max(0, min(frames, frame_index(segment.onset, frame_rate)))
        last = max(first, min(frames, frame_index(segment.offset, frame_rate)))
        if first > cursor:
            add(SIL, first - cursor)
        if last <= cursor:
            continue
        start = max(first, cursor)
        add(SIL if phone in (None, SILENCE) else SYMBOL_INDEX[phone], last - start)
        cursor = last
    add(SIL, frames - cursor)
    return tokens, lengths


def length_regulate(hidden: torch.Tensor, durations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Repeat each token's vector (B, C, N) by its frame count (B, N): (B, C, T) and the
    frame lengths (B,); padded with zeros past each item's end."""
    lengths = durations.sum(dim=1)
    total = max(1, int(lengths.max()))
    out = hidden.new_zeros(hidden.shape[0], hidden.shape[1], total)
    for b in range(hidden.shape[0]):
        expanded = torch.repeat_interleave(hidden[b], durations[b], dim=1)
        out[b, :, :expanded.shape[1]] = expanded
    return out, lengths


def sequence_mask(lengths: torch.Tensor, total: int) -> torch.Tensor:
    """(B, total) True where the position is inside the item."""
    return torch.arange(total, device=lengths.device)[None, :] < lengths[:, None]


class _Stack(nn.Module):
    """Dilated residual conv blocks on (B, C, T), each conditioned on a speaker vector."""

    def __init__(self, channels: int, dilations: Sequence[int], speaker_dim: int):
        super().__init__()
        self.blocks = nn.ModuleList(_DilatedBlock(channels, d) for d in dilations)
        self.speaker = nn.Linear(speaker_dim, channels * len(self.blocks))

    def forward(self, x: torch.Tensor, speaker: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        conditions = self.speaker(speaker).chunk(len(self.blocks), dim=1)
        m = mask[:, None].to(x.dtype)
        for block, condition in zip(self.blocks, conditions):
            x = block(x * m, condition[..., None])
        return x * m


class _DilatedBlock(ConvBlock):
    def __init__(self, channels: int, dilation: int, kernel: int = 5):
        super().__init__(channels, kernel)
        self.conv = nn.Conv1d(channels, channels, kernel, padding=dilation * (kernel // 2), dilation=dilation)


class _Predictor(nn.Module):
    """Two convolutions and a projection: one value per token (B, N), e.g. log duration."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(channels, hidden, 3, padding=1), nn.GELU(), ChannelNorm(hidden), nn.Dropout(0.1),
            nn.Conv1d(hidden, hidden, 3, padding=1), nn.GELU(), ChannelNorm(hidden), nn.Dropout(0.1),
            nn.Conv1d(hidden, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[:, 0]


class DurationSynthesizer(HubModel):
    """Text-to-mel synthesizer (non-autoregressive): phones + GE2E embedding -> mel.

    Durations and per-phone pitch are predicted; encoder and decoder are dilated convolutions.

    Args:
        channels: width of the encoder and decoder.
        encoder_dilations, decoder_dilations: one residual block per entry.
        speaker_dim: the embedding's size (256 for GE2E).
        predictor_channels: width of the duration and pitch predictors.
        postnet_channels: width of the residual post-net.
        mel: the mel settings of its output (those of the vocoders).
    """

    model_type = "duration-synth"
    pipeline_tag: ClassVar[str | None] = "text-to-speech"
    card_tags: ClassVar[tuple[str, ...]] = ("text-to-speech", "voice-cloning", "sv2tts", "speech")
    frame_targets: ClassVar[tuple[str, ...]] = ("phones", "f0")
    # what vc.adaptation trains on a reference: how it sounds, not what is said or its timing
    adaptable_modules: ClassVar[tuple[str, ...]] = ("decoder", "out", "postnet")
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"channels": 32, "encoder_dilations": [1, 2], "decoder_dilations": [1, 2],
                 "predictor_channels": 16, "postnet_channels": 16},
        "small": {"channels": 192, "encoder_dilations": [1, 2, 4, 1], "decoder_dilations": [1, 2, 4, 8, 1, 2],
                  "predictor_channels": 128, "postnet_channels": 128},
    }

    def __init__(self, *, channels: int = 192, encoder_dilations: Sequence[int] = (1, 2, 4, 1),
                 decoder_dilations: Sequence[int] = (1, 2, 4, 8, 1, 2), speaker_dim: int = 256,
                 predictor_channels: int = 128, postnet_channels: int = 128,
                 mel: MelConfig | dict | None = None):
        super().__init__()
        self.mel = as_dataclass(MelConfig, mel) if mel is not None else MelConfig()
        self.init_kwargs["mel"] = self.mel
        self.speaker_dim = speaker_dim
        self.embed = nn.Embedding(len(SYMBOLS), channels, padding_idx=PAD)
        self.encoder = _Stack(channels, encoder_dilations, speaker_dim)
        self.duration = _Predictor(channels, predictor_channels)
        self.pitch = _Predictor(channels, predictor_channels)
        self.pitch_embed = nn.Conv1d(1, channels, 3, padding=1)
        self.decoder = _Stack(channels, decoder_dilations, speaker_dim)
        self.out = nn.Conv1d(channels, self.mel.n_mels, 1)
        nn.init.constant_(self.out.bias, -5.0)  # near a speech log-mel level, not 0 (loud)
        n = self.mel.n_mels
        self.postnet = nn.Sequential(
            nn.Conv1d(n, postnet_channels, 5, padding=2), ChannelNorm(postnet_channels), nn.Tanh(),
            nn.Conv1d(postnet_channels, postnet_channels, 5, padding=2), ChannelNorm(postnet_channels),
            nn.Tanh(), nn.Conv1d(postnet_channels, n, 5, padding=2))

    # ----------------------------------------------------------------- text
    @staticmethod
    def tokens(ids: Sequence[int]) -> list[int]:
        """Tokens for `vc.text.text_to_ids` output: punctuation becomes a pause, word spaces
        go (the alignments the model learnt from have none), and the utterance starts and
        ends with a pause, as recordings do."""
        out = [SIL]
        for i in ids:
            i = int(i)
            if not 0 <= i < len(SYMBOLS) or i == PAD:
                raise TextError(f"symbol id {i} is not a synthesizer input; vc.text.SYMBOLS lists them")
            token = SIL if i in _PAUSES else i
            if token == _SPACE or (token == SIL and out[-1] == SIL):
                continue
            out.append(token)
        if out[-1] != SIL:
            out.append(SIL)
        if len(out) < 3:
            raise TextError("the text has no phones to speak; type a sentence")
        return out

    # ----------------------------------------------------------------- model
    def _encode(self, tokens: torch.Tensor, speaker: torch.Tensor):
        mask = tokens != PAD
        hidden = self.encoder(self.embed(tokens).transpose(1, 2), speaker, mask)
        return hidden, mask

    def _decode(self, hidden: torch.Tensor, durations: torch.Tensor, speaker: torch.Tensor):
        frames, lengths = length_regulate(hidden, durations)
        mask = sequence_mask(lengths, frames.shape[-1])
        mel = self.out(self.decoder(frames, speaker, mask))
        post = mel + self.postnet(mel)
        return mel, post, mask

    def _speaker(self, embedding: torch.Tensor) -> torch.Tensor:
        return F.normalize(embedding.float(), dim=-1)

    def forward(self, tokens: torch.Tensor, embedding: torch.Tensor, durations: torch.Tensor,
                pitch: torch.Tensor) -> dict[str, torch.Tensor]:
        """Teacher-forced pass: tokens (B, N), embeddings (B, 256), true frame counts (B, N)
        and phone pitch (B, N) -> mels and the predictions."""
        speaker = self._speaker(embedding)
        hidden, mask = self._encode(tokens, speaker)
        log_duration = self.duration(hidden.detach())
        pitch_pred = self.pitch(hidden.detach())
        hidden = hidden + self.pitch_embed(pitch[:, None])
        mel, post, frame_mask = self._decode(hidden, durations, speaker)
        return {"mel": mel, "post": post, "frame_mask": frame_mask, "token_mask": mask,
                "log_duration": log_duration, "pitch": pitch_pred}

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """L1 of the mel before and after the post-net, MSE of log(1 + frames) and of pitch."""
        out = self(batch["tokens"], batch["embedding"], batch["durations"], batch["pitch"])
        target = batch["mel"][..., :out["mel"].shape[-1]]
        fm = out["frame_mask"][:, None].to(target.dtype).expand_as(target)
        denom = fm.sum().clamp_min(1)
        recon = ((out["mel"] - target).abs() * fm).sum() / denom
        post = ((out["post"] - target).abs() * fm).sum() / denom
        tm = out["token_mask"].to(target.dtype)
        n_tokens = tm.sum().clamp_min(1)
        dur = (((out["log_duration"] - torch.log1p(batch["durations"].to(target.dtype))) ** 2) * tm).sum() / n_tokens
        pitch = (((out["pitch"] - batch["pitch"]) ** 2) * tm).sum() / n_tokens
        total = recon + post + dur + 0.5 * pitch
        return total, {"recon": post.item(), "mel_pre": recon.item(), "duration": dur.item(),
                       "pitch": pitch.item()}

    @torch.no_grad()
    def synthesize(self, tokens: Sequence[int] | torch.Tensor, embedding, rate: float = 1.0,
                   pitch_shift: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Mel (n_mels, T) for one utterance's tokens and a speaker embedding (256,), and the
        frames given to each token (N,). `rate` > 1 speaks faster; `pitch_shift` moves the
        predicted intonation (in z-score units)."""
        if not 0.25 <= float(rate) <= 4.0:
            raise ValueError(f"rate must be between 0.25 and 4 (1 is the natural pace), got {rate}")
        device = next(self.parameters()).device
        ids = torch.as_tensor(list(tokens) if not torch.is_tensor(tokens) else tokens,
                              dtype=torch.long, device=device).reshape(1, -1)
        if ids.numel() == 0:
            raise TextError("no tokens to synthesize; type a sentence")
        speaker = self._speaker(unit_embedding(embedding, self.speaker_dim, device, "the synthesizer")[None])
        dtype = next(self.parameters()).dtype
        hidden, _ = self._encode(ids, speaker.to(dtype))
        frames = torch.expm1(self.duration(hidden).float()).clamp_min(0) / float(rate)
        durations = torch.round(frames).long()
        durations[(ids != SIL) & (durations < 1)] = 1  # every phone is heard
        pitch = self.pitch(hidden) + pitch_shift
        hidden = hidden + self.pitch_embed(pitch[:, None])
        _, post, _ = self._decode(hidden, durations, speaker.to(dtype))
        return post[0].float(), durations[0]

    def describe_tokens(self, tokens: Sequence[int]) -> list[str]:
        return [SYMBOLS[int(t)] for t in tokens]


def phone_pitch(tokens_lengths: Sequence[int], lf0: torch.Tensor, voiced: torch.Tensor) -> torch.Tensor:
    """Per token: the mean z-scored log-F0 of its voiced frames (0 where none is voiced)."""
    out = torch.zeros(len(tokens_lengths))
    start = 0
    for i, n in enumerate(tokens_lengths):
        v = voiced[start:start + n] > 0.5
        if v.any():
            out[i] = lf0[start:start + n][v].mean()
        start += n
    return out


__all__ = ["DurationSynthesizer", "alignment_tokens", "length_regulate", "phone_pitch",
           "sequence_mask"]

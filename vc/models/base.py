"""The one interface every voice-conversion model family implements.

A conversion model splits a mel spectrogram into *content* (what is said) and a *speaker*
representation (who says it), and renders content in another speaker's voice:

    src = model.speaker([source_mel], source_embedding)     # (D,)
    tgt = model.speaker(reference_mels, reference_embedding)
    out = model.convert(mel[None], src[None], tgt[None])     # (1, n_mels, frames)

What a "speaker" is depends on the family: a GE2E embedding (AutoVC, the zero-shot VQ-VAE), or
what vector quantisation strips from the reference mels (VQVC+). `speaker` hides that, so the
front object (`vc.pipeline.VoiceConverter`) and the evaluation harness treat all alike.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import torch

from ..hub import HubModel
from ..mel import MelConfig


@dataclass
class ContentFrames:
    """A model's content representation of one utterance, frame by frame.

    Attributes:
        features: continuous features before quantisation, (frames, dim).
        frame_rate: frames per second of `features` and `codes`.
        codes: discrete unit ids (frames,) for quantised models, None otherwise.
    """

    features: torch.Tensor
    frame_rate: float
    codes: torch.Tensor | None = None


class ConversionModel(HubModel):
    """Base class of AutoVC, VQVC+ and the VQ-VAE (no model_type: not loadable itself).

    Subclasses set `self.mel` (a `MelConfig`) and implement `speaker`, `encode`, `decode`,
    `content_frames` and `loss`. Mels are (B, n_mels, frames) log-mels as `self.mel` defines.
    """

    pipeline_tag: ClassVar[str | None] = "audio-to-audio"
    card_tags: ClassVar[tuple[str, ...]] = ("voice-conversion", "speech")
    #: "embedding": the model is conditioned on a GE2E embedding of the speaker;
    #: "mel": it derives the speaker from reference mels itself.
    speaker_input: ClassVar[str] = "embedding"
    #: the number of frames a mel's length must be a multiple of (down-sampling factor).
    frame_multiple: int = 1
    #: per-frame training targets the family learns from besides the mel ("phones": phone
    #: labels from alignments, "f0": normalised log-F0 and voicing); see training.features.
    frame_targets: ClassVar[tuple[str, ...]] = ()
    #: whether `encode` uses the source speaker; when not, converting skips embedding the source.
    uses_source_speaker: ClassVar[bool] = True
    #: whether `convert` takes frame phone labels (`phones=`, see `vc.transcript_phones`).
    accepts_phone_labels: ClassVar[bool] = False
    mel: MelConfig

    def speaker(self, mels: Sequence[torch.Tensor], embedding: torch.Tensor | None) -> torch.Tensor:
        """Speaker representation (D,) from reference mels [(n_mels, frames), ...] and/or their
        speaker-encoder embedding (256,)."""
        raise NotImplementedError

    def encode(self, mel: torch.Tensor, speaker: torch.Tensor) -> Any:
        """Content of `mel` (B, n_mels, frames), given the source speaker (B, D)."""
        raise NotImplementedError

    def decode(self, content: Any, speaker: torch.Tensor) -> torch.Tensor:
        """Mel (B, n_mels, frames) of `content` spoken by `speaker` (B, D)."""
        raise NotImplementedError

    def convert(self, mel: torch.Tensor, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """`mel` (B, n_mels, frames) re-spoken by the target speaker; same frame count out."""
        frames = mel.shape[-1]
        padded = pad_to_multiple(mel, self.frame_multiple)
        return self.decode(self.encode(padded, source), target)[..., :frames]

    def content_frames(self, mel: torch.Tensor) -> ContentFrames:
        """Content features (and codes, if discrete) of one mel (n_mels, frames)."""
        raise NotImplementedError

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Training loss of a batch {"mel": (B, n_mels, T), "embedding": (B, 256),
        "speaker": (B,) int ids}; returns the loss to minimise and named parts for logging
        (of which "recon" is the mel reconstruction error)."""
        raise NotImplementedError


def unit_embedding(embedding, dim: int, device: torch.device, family: str) -> torch.Tensor:
    """A speaker-encoder embedding (tensor or array) as a unit vector (dim,) on `device`; a
    clear ValueError when it is missing or has the wrong shape."""
    if embedding is None:
        raise ValueError(f"{family} is conditioned on a GE2E speaker embedding; pass the "
                         "reference's embedding (vc.speaker.SpeakerEncoder.embed)")
    embedding = torch.as_tensor(embedding, dtype=torch.float32, device=device)
    if embedding.shape != (dim,):
        raise ValueError(f"expected a speaker embedding of shape ({dim},), got {tuple(embedding.shape)}")
    return torch.nn.functional.normalize(embedding, dim=0)


def pad_to_multiple(mel: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad the last axis by repeating the edge frame up to a multiple of `multiple`."""
    extra = (-mel.shape[-1]) % multiple
    if extra == 0:
        return mel
    return torch.cat([mel, mel[..., -1:].expand(*mel.shape[:-1], extra)], dim=-1)

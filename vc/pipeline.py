"""Front objects: what a user, the web demo and the evaluation harness call.

    converter = VoiceConverter.from_pretrained("autovc-small")     # or a folder, run or repo id
    audio = converter.convert("me.wav", ["you1.wav", "you2.wav"])  # -> Audio
    audio.save("me-as-you.wav")
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence, Union

import numpy as np
import torch

from .audio import Audio, AudioSource, SpeechLimits, prepare_speech
from .chunking import process_in_chunks
from .devices import check_device
from .errors import CheckpointError, VoicelabError
from .hub import load_model
from .mel import MelConfig, MelSpectrogram
from .models import ConversionModel
from .vocoders import GriffinLim

Progress = Callable[[float, str], None]


def load_vocoder(spec: Union[str, os.PathLike, torch.nn.Module], mel: MelConfig | None = None,
                 device: str = "cpu") -> torch.nn.Module:
    """A vocoder for mels made with `mel`: "griffinlim", a loaded module, or a vocoder model's
    name/folder/repo. Refuses one trained on other mel settings, naming the differences
    (`mel=None` takes a trained vocoder's own settings, and the default ones for Griffin-Lim)."""
    if isinstance(spec, torch.nn.Module):
        vocoder = spec
    elif spec in ("griffinlim", "griffin-lim", "gl"):
        return GriffinLim(mel or MelConfig()).to(device)
    else:
        vocoder = load_model(resolve_run_folder(spec), device=device).eval()
    trained_on = getattr(vocoder, "mel", None)
    if not isinstance(trained_on, MelConfig) or isinstance(vocoder, ConversionModel):
        raise CheckpointError(f"'{spec}' is not a vocoder ({type(vocoder).__name__}); give "
                              "'griffinlim' or a vocoder model such as a HiFi-GAN")
    differences = mel.mismatches(trained_on) if mel is not None else []
    if differences:
        raise CheckpointError(
            f"the vocoder '{spec}' was trained on other mel settings than the model makes: "
            f"{'; '.join(differences)} (model vs vocoder). Use a vocoder trained on the model's "
            "mel settings, or 'griffinlim'.")
    return vocoder


def resolve_run_folder(name: Union[str, os.PathLike]) -> Union[str, os.PathLike]:
    """A training run's folder (RUN_DIR with RUN_DIR/model/) stands for its published weights."""
    path = Path(name)
    if path.is_dir() and not (path / "config.json").exists() and (path / "model" / "config.json").exists():
        return path / "model"
    return name


@torch.inference_mode()
def vocode(vocoder: torch.nn.Module, mel: torch.Tensor, mel_config: MelConfig, chunk_frames: int = 2048,
           overlap_frames: int = 64, progress: Progress | None = None) -> Audio:
    """A mel (n_mels, frames) as audio, vocoded in overlapping chunks so memory stays bounded."""
    hop = mel_config.hop_length

    def one(chunk: torch.Tensor) -> torch.Tensor:
        wav = vocoder(chunk)
        wanted = chunk.shape[-1] * hop
        return torch.nn.functional.pad(wav, (0, max(0, wanted - wav.shape[-1])))[:wanted]
    wav = process_in_chunks(mel, one, chunk_frames, overlap_frames, scale=hop, progress=progress)
    return Audio(wav.float().cpu().numpy(), mel_config.sample_rate)


class _LazySpeakerEncoder:
    """The GE2E encoder a front object was given, else one loaded on first need."""

    _speaker_encoder = None
    device: str

    @property
    def speaker_encoder(self):
        if self._speaker_encoder is None:
            from .speaker import SpeakerEncoder
            self._speaker_encoder = SpeakerEncoder.pretrained(device=self.device)
        return self._speaker_encoder


class VoiceConverter(_LazySpeakerEncoder):
    """Any-to-any voice conversion with one model and one vocoder.

    Args:
        model: a `ConversionModel` (AutoVC, VQVC+, VQ-VAE).
        vocoder: "griffinlim", a vocoder model name, or a vocoder module.
        device: where to run.
        source_limits, reference_limits: what counts as usable source and reference speech.
        speaker_encoder: a loaded `SpeakerEncoder` to use (and share between converters);
            by default one is loaded on first need.
        knn: blend the model's output with the reference's own frames matched in the model's
            content space (`KnnRefinement`; None: the model's output as it is).
        transcript: for models that take frame phone labels (`accepts_phone_labels`, the
            phonetic converter), a `vc.transcript_phones.TranscriptPhones` that tells what the
            source says; its forced-aligned phones replace the model's own recognition. Where
            Whisper's weights are missing, or a clip cannot be transcribed, the model's
            recogniser is used (with a warning for the missing weights).
        phone_matching: for the same models, a `vc.phone_matching.PhoneMeanMatching` that
            moves each phone's average spectrum of the output to the reference's; reference
            frames are labelled by `transcript` when given, else by the model's recogniser.
        adaptation: a `vc.adaptation.ReferenceAdaptation` for models that can learn from their
            reference (the phonetic converter): before converting, a copy of the decoder takes
            a few training steps re-speaking the reference clips from their own phones and
            melody, so it renders that voice more closely. None: as trained.
    """

    def __init__(self, model: ConversionModel, vocoder: Union[str, torch.nn.Module] = "griffinlim",
                 device: str = "cpu", source_limits: SpeechLimits = SpeechLimits(),
                 reference_limits: SpeechLimits = SpeechLimits(max_duration=120.0), speaker_encoder=None,
                 knn: "KnnRefinement | None" = None, transcript=None, phone_matching=None, adaptation=None):
        if not isinstance(model, ConversionModel):
            raise CheckpointError(f"a {type(model).__name__} is not a voice-conversion model; "
                                  "give an AutoVC, VQVC+ or VQ-VAE model")
        device = check_device(device)
        self.model = model.to(device).eval()
        self.mel_config = model.mel
        self.sample_rate = model.mel.sample_rate
        self.mel = MelSpectrogram(model.mel).to(device)
        self.vocoder = load_vocoder(vocoder, model.mel, device)
        self.device = device
        self.source_limits, self.reference_limits = source_limits, reference_limits
        self._speaker_encoder = speaker_encoder
        if knn is not None:
            knn.check(model)
        self.knn = knn
        if phone_matching is not None and not model.accepts_phone_labels:
            raise ValueError(f"phone matching needs a model that labels phones (the phonetic converter); "
                             f"{type(model).__name__} does not")
        if adaptation is not None:
            if not hasattr(model, "adaptation_example"):
                raise ValueError(f"adapting to the reference needs a model that can learn from it (the "
                                 f"phonetic converter); {type(model).__name__} cannot")
            adaptation.learning_modules(model)  # a bad module name is refused now, not mid-request
        self.transcript = transcript if model.accepts_phone_labels else None
        self.phone_matching, self.adaptation = phone_matching, adaptation
        if adaptation is not None:
            from .adaptation import AdaptedModels
            self._adapted = AdaptedModels()  # a voice used again (a preset) is adapted once
        self._transcript_missing: str | None = None

    @classmethod
    def from_pretrained(cls, name: Union[str, os.PathLike], vocoder: Union[str, torch.nn.Module] = "griffinlim",
                        device: str = "cpu", revision: str | None = None, **kwargs) -> "VoiceConverter":
        """Load a model by `checkpoints/` name, folder, training run folder or Hub repo id."""
        device = check_device(device)
        model = load_model(resolve_run_folder(name), revision=revision, device=device)
        return cls(model, vocoder=vocoder, device=device, **kwargs)

    def _speaker(self, clips: Sequence[Audio], mels: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        if mels is None:
            mels = [self.mel(c.to_tensor().to(self.device)) for c in clips]
        embedding = None
        if self.model.speaker_input == "embedding":
            embedding = torch.from_numpy(self.speaker_encoder.embed_many(clips)).to(self.device)
        return self.model.speaker(mels, embedding)

    @torch.inference_mode()
    def convert_mel(self, mel: torch.Tensor, source: torch.Tensor, target: torch.Tensor,
                    chunk_frames: int = 1024, overlap_frames: int = 64,
                    progress: Progress | None = None, phones: torch.Tensor | None = None,
                    model: ConversionModel | None = None) -> torch.Tensor:
        """Convert a mel (n_mels, frames) from speaker `source` to `target` (model speaker
        vectors), in overlapping chunks cross-faded together so memory stays bounded.
        `phones` (frames,) are known phone labels for models that take them; `model` replaces
        the converter's own (an adapted copy)."""
        model = model or self.model
        if phones is not None:
            # the labels ride along as one more row, so every chunk gets its own frames' labels
            def one(chunk: torch.Tensor) -> torch.Tensor:
                labels = chunk[-1:].round().long()
                return model.convert(chunk[None, :-1], source[None], target[None], phones=labels)[0]
            mel = torch.cat([mel, phones.to(mel.device, mel.dtype)[None]])
        else:
            def one(chunk: torch.Tensor) -> torch.Tensor:
                return model.convert(chunk[None], source[None], target[None])[0]
        return process_in_chunks(mel, one, chunk_frames, overlap_frames,
                                 align=self.model.frame_multiple,
                                 progress=_part(progress, 0.0, 0.7, "converting"))

    def vocode(self, mel: torch.Tensor, chunk_frames: int = 2048, overlap_frames: int = 64,
               progress: Progress | None = None) -> Audio:
        return vocode(self.vocoder, mel, self.mel_config, chunk_frames, overlap_frames, progress)

    def convert(self, source: AudioSource, reference: Union[AudioSource, Sequence[AudioSource]],
                *, chunk_seconds: float = 16.0, progress: Progress | None = None) -> Audio:
        """`source` speech re-spoken in the voice of `reference` (one clip or several clips of
        the target speaker). Paths, `Audio`, or (rate, samples) tuples."""
        references = list(reference) if isinstance(reference, (list, tuple)) and not \
            _is_rate_tuple(reference) else [reference]
        src = prepare_speech(source, self.sample_rate, self.source_limits)
        refs = [prepare_speech(r, self.sample_rate, self.reference_limits) for r in references]
        with torch.inference_mode():
            reference_mels = [self.mel(r.to_tensor().to(self.device)) for r in refs]
            target_speaker = self._speaker(refs, reference_mels)
            # a model whose encoder ignores the source speaker is spared embedding the source
            source_speaker = self._speaker([src]) if self.model.uses_source_speaker else target_speaker
            mel = self.mel(src.to_tensor().to(self.device))
        phones = self.phones_of(src, mel.shape[-1], progress)
        reference_phones = None
        if self.phone_matching is not None or self.adaptation is not None:
            reference_phones = [self.phones_of(r, m.shape[-1]) for r, m in zip(refs, reference_mels)]
        model = self.adapted_model(reference_mels, reference_phones, target_speaker, progress)
        chunk = max(64, int(chunk_seconds * self.mel_config.frame_rate))
        converted = self.convert_mel(mel, source_speaker, target_speaker, chunk_frames=chunk,
                                     overlap_frames=min(64, chunk // 4), progress=progress, phones=phones,
                                     model=model)
        if self.phone_matching is not None:
            with torch.inference_mode():
                labels = [self.frame_phones(m, known) for m, known in zip(reference_mels, reference_phones)]
                converted = self.phone_matching.refine(converted, self.frame_phones(mel, phones),
                                                       reference_mels, labels)
        if self.knn is not None:
            with torch.inference_mode():  # the reference mels computed once, above
                converted = self.knn.refine(self.model, mel, converted, reference_mels)
        audio = self.vocode(converted, progress=_part(progress, 0.7, 1.0, "vocoding"))
        bad = int(np.count_nonzero(~np.isfinite(audio.samples)))
        if bad:
            raise CheckpointError(
                f"the conversion came out as NaN or infinite in {bad} of {len(audio.samples)} "
                "samples, which would play as full-scale noise: the model or vocoder weights are "
                "broken. Re-download or re-train them.")
        if progress:
            progress(1.0, "done")
        return audio

    def adapted_model(self, reference_mels: Sequence[torch.Tensor], reference_phones: Sequence[torch.Tensor | None],
                      target: torch.Tensor, progress: Progress | None = None) -> ConversionModel:
        """The model to convert into this reference with: a copy adapted to the reference clips
        (their mels, transcript phones or None, the target's speaker vector) when the converter
        has an `adaptation`, else the model itself."""
        if self.adaptation is None:
            return self.model
        from .adaptation import reference_key
        if progress:
            progress(0.0, "adapting to the reference")
        key = reference_key(self.adaptation, target, *reference_mels,
                            *[torch.empty(0) if p is None else p for p in reference_phones])
        report = None if progress is None else (lambda _f, what: progress(0.0, what))  # converting owns the bar
        return self._adapted.get(key, lambda: self.adaptation.adapt(self.model, [
            self.model.adaptation_example(m, labels, target) for m, labels in zip(reference_mels, reference_phones)],
            report))

    def frame_phones(self, mel: torch.Tensor, known: torch.Tensor | None) -> torch.Tensor:
        """`known` labels, else the model's own most likely phone per frame."""
        return known if known is not None else self.model.content_frames(mel).codes

    def phones_of(self, clip: Audio, frames: int, progress: Progress | None = None) -> torch.Tensor | None:
        """The transcript's frame phone labels of a prepared clip, or None (no
        transcript guidance, no weights, or nothing Whisper could transcribe and align)."""
        if self.transcript is None or self._transcript_missing:
            return None
        if progress:
            progress(0.0, "transcribing")
        try:
            found = self.transcript.labels(clip, frames, self.mel_config.frame_rate)
        except VoicelabError as error:  # no Whisper weights, no faster-whisper or pocketsphinx
            self._transcript_missing = str(error)
            warnings.warn(f"converting without transcript guidance, which costs most of the words: {error}")
            return None
        return None if found is None else found.labels


@dataclass(frozen=True)
class KnnRefinement:
    """kNN-VC's idea on top of a model: each output frame is blended with the mean of the k
    reference frames whose content is nearest the source frame's (`vc.knn.knn_match` over the
    model's `content_frames`), so the output borrows the target's real spectra where the
    reference has the same sound, and keeps the model's frame where it has none.

    Args:
        k: reference frames averaged per output frame.
        blend: weight of the matched frames (0: the model alone, 1: pure matching).
        min_similarity: a frame whose neighbours are less similar than this (cosine) keeps the
            model's output.
    """

    k: int = 4
    blend: float = 0.5
    min_similarity: float = 0.5

    def check(self, model: ConversionModel) -> None:
        if self.k < 1 or not 0.0 <= self.blend <= 1.0:
            raise ValueError(f"kNN refinement needs k >= 1 and blend in [0, 1]; got k={self.k}, blend={self.blend}")
        if model.frame_multiple != 1:
            raise ValueError(f"kNN refinement needs content at the mel frame rate; {type(model).__name__} "
                             f"down-samples by {model.frame_multiple}")

    def refine(self, model: ConversionModel, source_mel: torch.Tensor, converted: torch.Tensor,
               reference_mels: Sequence[torch.Tensor]) -> torch.Tensor:
        """converted (n_mels, T) blended with the reference frames matched to source_mel (n_mels, T)."""
        from .knn import knn_match

        query = model.content_frames(source_mel).features
        keys = torch.cat([model.content_frames(m).features for m in reference_mels])
        values = torch.cat([m.T for m in reference_mels])
        if query.shape[0] != converted.shape[-1]:
            raise ValueError(f"{type(model).__name__}'s content has {query.shape[0]} frames for "
                             f"{converted.shape[-1]} mel frames; kNN refinement needs one per frame")
        matched, similarity = knn_match(query, keys, values, self.k)
        weight = (self.blend * (similarity >= self.min_similarity).float())[None, :]
        return converted * (1 - weight) + matched.T.to(converted.dtype) * weight


def _is_rate_tuple(value) -> bool:
    return isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], int)


def _part(progress: Progress | None, start: float, end: float, what: str) -> Progress | None:
    """Map a sub-task's 0..1 progress onto [start, end] of the whole."""
    if progress is None:
        return None
    return lambda fraction, _desc="": progress(start + (end - start) * fraction, what)

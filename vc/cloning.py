"""Text cloning: type a sentence, give a few seconds of someone's voice, hear that voice say it.

    cloner = VoiceCloner.from_pretrained("synth-small", vocoder="hifigan-fast")
    audio = cloner.speak("Hello there. How are you today?", "her.wav")      # -> Audio
    audio = cloner.speak(text, ["her1.wav", "her2.wav"], rate=1.2)          # several clips, faster

The SV2TTS chain (Jia et al., 2018): the GE2E speaker encoder embeds the reference, a
text-to-mel synthesizer conditioned on that embedding renders each sentence (the text front end
of `vc.text` normalises and phonemizes it), sentences are joined with pauses and a vocoder turns
the mel into a waveform.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Sequence, Union

import numpy as np
import torch

from .adaptation import AdaptedModels, reference_example, reference_key
from .audio import Audio, AudioSource, SpeechLimits, prepare_speech
from .devices import check_device
from .errors import CheckpointError
from .hub import load_model
from .models.synthesizer import DurationSynthesizer
from .mel import MelSpectrogram
from .models import ConversionModel
from .pipeline import (
    KnnRefinement, Progress, _is_rate_tuple, _LazySpeakerEncoder, load_vocoder, resolve_run_folder, vocode,
)
from .data.phones import PHONE_INDEX
from .speaker import cosine
from .text import DEFAULT_MAX_CHARS, SYMBOLS, Lexicon, Phonemizer, TextError, split_sentences, text_to_ids


@dataclass
class ClonedSpeech:
    """What `VoiceCloner.clone` returns.

    Attributes:
        audio: the speech.
        mel: its log-mel (n_mels, frames), sentences and pauses joined.
        sentences: the text, sentence by sentence, as it was spoken.
        durations: frames given to each token of each sentence.
        reference_embedding: the GE2E embedding (256,) the voice was cloned from.
    """

    audio: Audio
    mel: torch.Tensor
    sentences: list[str]
    durations: list[torch.Tensor] = field(repr=False)
    reference_embedding: np.ndarray = field(repr=False)


class VoiceCloner(_LazySpeakerEncoder):
    """Text to speech in the voice of a reference recording.

    Args:
        synthesizer: a `DurationSynthesizer`.
        vocoder: "griffinlim", a vocoder model name/folder/repo, or a vocoder module.
        device: where to run.
        reference_limits: what counts as usable reference speech.
        speaker_encoder: a loaded `SpeakerEncoder` to share; by default one is loaded on first use.
        max_chars: the longest text accepted at once.
        pause_seconds: the silence between sentences (divided by the speaking rate).
        voice: the espeak-ng voice that reads words CMUdict lacks.
        phonemizer: a `vc.text.Phonemizer` to use (and share between cloners, so CMUdict is
            read once); by default one with CMUdict and `voice`.
        knn: blend the synthesized frames with the reference's own frames matched in
            `content_model`'s content space (`vc.pipeline.KnnRefinement`): the output borrows
            the reference's real spectra where it has the same sound. None: the synthesizer alone.
        content_model: the conversion model whose `content_frames` the matching uses (a
            loaded model or a name/folder/repo id), e.g. the default converter "ppgvc-small".
        phone_matching: a `vc.phone_matching.PhoneMeanMatching` that moves each phone's average
            spectrum (and each band's spread) of the synthesized speech to the reference's; the
            synthesized frames' phones are known from the durations, the reference's come from
            `transcript`.
        transcript: a `vc.transcript_phones.TranscriptPhones` that labels the reference's
            frames (needed by phone_matching and adaptation; a reference it cannot transcribe
            is left out).
        adaptation: a `vc.adaptation.ReferenceAdaptation`: before speaking, a copy of the
            synthesizer takes a few training steps on the reference clips themselves (their
            phones from `transcript`), so it renders that voice more closely. None: as trained.
    """

    def __init__(self, synthesizer: DurationSynthesizer, vocoder: Union[str, torch.nn.Module] = "griffinlim",
                 device: str = "cpu", reference_limits: SpeechLimits = SpeechLimits(max_duration=120.0),
                 speaker_encoder=None, max_chars: int = DEFAULT_MAX_CHARS, pause_seconds: float = 0.35,
                 voice: str = "en-us", phonemizer: Phonemizer | None = None, knn: KnnRefinement | None = None,
                 content_model: Union[str, os.PathLike, ConversionModel, None] = None,
                 phone_matching=None, transcript=None, adaptation=None):
        if not isinstance(synthesizer, DurationSynthesizer):
            raise CheckpointError(f"a {type(synthesizer).__name__} is not a text-to-mel synthesizer; "
                                  "give a synthesizer model (model_type 'duration-synth')")
        if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1:
            raise ValueError(f"max_chars must be a whole number of at least 1, got {max_chars!r}")
        if not 0 <= float(pause_seconds) <= 5:
            raise ValueError(f"pause_seconds must be between 0 and 5, got {pause_seconds!r}")
        device = check_device(device)
        self.synthesizer = synthesizer.to(device).eval()
        self.mel_config = synthesizer.mel
        self.sample_rate = synthesizer.mel.sample_rate
        self.device = device
        self.reference_limits = reference_limits
        self.max_chars, self.pause_seconds = max_chars, float(pause_seconds)
        # CMUdict first, as the forced aligner pronounced the training speech; espeak-ng for the rest
        self.phonemizer = phonemizer or Phonemizer(voice, lexicon=Lexicon())
        self.vocoder = load_vocoder(vocoder, synthesizer.mel, device)
        self._speaker_encoder = speaker_encoder
        if phone_matching is not None and transcript is None:
            raise ValueError("phone matching needs the reference's phones: give transcript=TranscriptPhones()")
        if adaptation is not None and transcript is None:
            raise ValueError("adapting to the reference needs its phones: give transcript=TranscriptPhones()")
        self.phone_matching, self.transcript, self.adaptation = phone_matching, transcript, adaptation
        if adaptation is not None:
            self._adapted_models = AdaptedModels()  # a voice used again (a preset) is adapted once
        self._mel = MelSpectrogram(synthesizer.mel).to(device)
        self.knn, self.content_model = knn, None
        if knn is not None:
            if content_model is None:
                raise ValueError("kNN refinement matches frames in a conversion model's content "
                                 "space; give content_model, e.g. 'ppgvc-small'")
            if not isinstance(content_model, ConversionModel):
                content_model = load_model(resolve_run_folder(content_model), device=device)
            if not isinstance(content_model, ConversionModel):
                raise CheckpointError(f"content_model must be a voice-conversion model, not a "
                                      f"{type(content_model).__name__}")
            differences = synthesizer.mel.mismatches(content_model.mel)
            if differences:
                raise CheckpointError(f"the content model uses other mel settings than the synthesizer: "
                                      f"{'; '.join(differences)}")
            knn.check(content_model)
            self.content_model = content_model.to(device).eval()

    @classmethod
    def from_pretrained(cls, name: Union[str, os.PathLike], vocoder: Union[str, torch.nn.Module] = "griffinlim",
                        device: str = "cpu", revision: str | None = None, **kwargs) -> "VoiceCloner":
        """Load a synthesizer by `checkpoints/` name, folder, training run folder or Hub repo id."""
        device = check_device(device)
        model = load_model(resolve_run_folder(name), revision=revision, device=device)
        return cls(model, vocoder=vocoder, device=device, **kwargs)

    # ----------------------------------------------------------------- text
    def sentences(self, text: str) -> list[str]:
        """The sentences `text` is spoken as; TextError for empty or over-long text."""
        if not isinstance(text, str):
            raise TextError(f"text must be a str, not {type(text).__name__}")
        if not text.strip():
            raise TextError("no text to speak; type a sentence")
        if len(text) > self.max_chars:
            raise TextError(f"the text is {len(text)} characters long, over this cloner's limit of "
                            f"{self.max_chars}; shorten it or split it into several requests")
        return split_sentences(text)

    def reference_embedding(self, reference: Union[AudioSource, Sequence[AudioSource]]) -> np.ndarray:
        """The GE2E embedding (256,) of one reference clip or several of the same speaker."""
        return self.speaker_encoder.embed_many(self._references(reference))

    def _references(self, reference) -> list[Audio]:
        return [prepare_speech(r, self.sample_rate, self.reference_limits) for r in _clips(reference)]

    # ----------------------------------------------------------------- speech
    def clone(self, text: str, reference: Union[AudioSource, Sequence[AudioSource]], *, rate: float = 1.0,
              progress: Progress | None = None) -> ClonedSpeech:
        """`text` in the voice of `reference`, with the mel and durations behind it."""
        check_rate(rate)
        sentences = self.sentences(text)
        token_lists = []
        for sentence in sentences:  # all text problems are reported before any audio work
            ids = text_to_ids(sentence, max_chars=self.max_chars, phonemizer=self.phonemizer)
            token_lists.append(self.synthesizer.tokens(ids))
        references = self._references(reference)
        embedding = self.speaker_encoder.embed_many(references)
        if progress:
            progress(0.1, "reference embedded")
        synthesizer, spoken_from = self.synthesizer, 0.1
        if self.adaptation is not None:  # most of a new voice's time: it gets 0.1-0.5 of the bar
            if progress:
                progress(0.1, "transcribing the reference")
            synthesizer, spoken_from = self._adapted(references, embedding, progress), 0.5
        pause = int(round(self.pause_seconds / float(rate) * self.mel_config.frame_rate))
        mels, durations, labels = [], [], []
        for i, tokens in enumerate(token_lists):
            mel, frames = synthesizer.synthesize(tokens, embedding, rate=rate)
            if mels and pause:  # the previous sentence's closing pause, held (room tone, not digital silence)
                mels.append(mels[-1][:, -1:].expand(-1, pause))
                labels.append(torch.zeros(pause, dtype=torch.long))
            mels.append(mel)
            durations.append(frames.cpu())
            labels.append(torch.repeat_interleave(token_phones(tokens), frames.cpu()))
            if progress:
                progress(spoken_from + (0.6 - spoken_from) * (i + 1) / len(token_lists),
                         f"sentence {i + 1} of {len(token_lists)}")
        mel = torch.cat(mels, dim=1)
        if self.phone_matching is not None:
            mel = self._match_phones(mel, torch.cat(labels), references, progress)
        if self.knn is not None:
            with torch.inference_mode():
                reference_mels = [self._mel(r.to_tensor().to(self.device)) for r in references]
                mel = self.knn.refine(self.content_model, mel, mel, reference_mels)
        audio = self._vocode(mel, progress)
        if progress:
            progress(1.0, "done")
        return ClonedSpeech(audio, mel.cpu(), sentences, durations, embedding)

    def speak(self, text: str, reference: Union[AudioSource, Sequence[AudioSource]], *, rate: float = 1.0,
              progress: Progress | None = None) -> Audio:
        """`text` spoken in the voice of `reference` (paths, `Audio`, or (rate, samples))."""
        return self.clone(text, reference, rate=rate, progress=progress).audio

    def similarity(self, audio: Audio, reference_embedding: np.ndarray) -> float:
        """GE2E cosine between speech and a reference embedding (e.g. `ClonedSpeech`'s)."""
        return cosine(self.speaker_encoder.embed(audio), reference_embedding)

    def _reference_phones(self, references: Sequence[Audio]) -> list[tuple[Audio, torch.Tensor, torch.Tensor]]:
        """(clip, mel, frame phone labels) of each reference the transcript could label
        (the transcriber caches, so phone matching after adaptation pays once)."""
        found_all = []
        with torch.inference_mode():
            for clip in references:
                ref_mel = self._mel(clip.to_tensor().to(self.device))
                found = self.transcript.labels(clip, ref_mel.shape[-1], self.mel_config.frame_rate)
                if found is not None:
                    found_all.append((clip, ref_mel, found.labels))
        return found_all

    def _adapted(self, references: Sequence[Audio], embedding: np.ndarray,
                 progress: Progress | None = None) -> DurationSynthesizer:
        def build() -> DurationSynthesizer:
            examples = [reference_example(clip.samples, clip.sample_rate, mel, labels, embedding,
                                          self.mel_config.hop_length)
                        for clip, mel, labels in self._reference_phones(references)]
            report = None if progress is None else (lambda f, what: progress(0.15 + 0.35 * f, what))
            return self.adaptation.adapt(self.synthesizer, examples, report)  # none labelled: as trained
        key = reference_key(self.adaptation, embedding, *[np.asarray(r.samples) for r in references])
        return self._adapted_models.get(key, build)

    def _match_phones(self, mel: torch.Tensor, labels: torch.Tensor, references: Sequence[Audio],
                      progress: Progress | None) -> torch.Tensor:
        if progress:
            progress(0.6, "transcribing the reference")
        found = self._reference_phones(references)
        if not found:
            return mel  # nothing in the reference could be transcribed: the synthesizer alone
        with torch.inference_mode():
            return self.phone_matching.refine(mel, labels.to(mel.device), [m for _, m, _ in found],
                                              [lab for _, _, lab in found])

    def _vocode(self, mel: torch.Tensor, progress: Progress | None) -> Audio:
        audio = vocode(self.vocoder, mel, self.mel_config, progress=None if progress is None else
                       (lambda f, _d="": progress(0.6 + 0.4 * f, "vocoding")))
        bad = int(np.count_nonzero(~np.isfinite(audio.samples)))
        if bad:
            raise CheckpointError(f"the speech came out as NaN or infinite in {bad} samples: the "
                                  "synthesizer or vocoder weights are broken. Re-download or re-train them.")
        return audio


def token_phones(tokens: Sequence[int]) -> torch.Tensor:
    """`vc.data.phones.PHONES` indices of synthesizer tokens (pauses and padding: silence)."""
    return torch.tensor([PHONE_INDEX.get(SYMBOLS[int(t)], 0) for t in tokens], dtype=torch.long)


def check_rate(rate: float) -> float:
    """The speaking rate as a float; ValueError unless it is between 0.5 and 2."""
    try:
        value = float(rate)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0.5 <= value <= 2.0:
        raise ValueError(f"rate must be between 0.5 and 2 (1 is the natural pace), got {rate!r}")
    return value


def _clips(reference) -> list:
    if isinstance(reference, (list, tuple)) and not _is_rate_tuple(reference):
        if not reference:
            raise ValueError("no reference clip given; give at least one recording of the voice")
        return list(reference)
    return [reference]

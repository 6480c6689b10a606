"""What the harness scores: conversion models and the baselines every report carries.

A *system* turns one protocol trial into one output clip:

- `ModelSystem`: a conversion model (anything `VoiceConverter.from_pretrained` takes) with a
  vocoder; `name+vocoder` picks the vocoder ("vqvc-small+checkpoints/hifigan-fast").
- `SourceBaseline` ("source"): the source utterance itself, prepared as a model's input is
  (trimmed, level-normalised). Its similarity to the target is the floor a converter must beat.
- `TargetCeiling` ("target ceiling"): a real utterance of the target speaker: the target's
  reading of the same sentence where the protocol has one, otherwise the last reference clip,
  scored against the other references only. Its WER counts only trials where it really reads
  the source sentence (see `TargetCeiling.expected_text`).
- `ResynthesisBaseline` ("resynthesis (V)"): the source through the mel analysis and vocoder V
  only: what the vocoder alone costs in quality.

Each system has an `identity`, a hash of everything that determines its outputs (weights,
configs, vocoder), so outputs can be cached by content and reused on resume.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from vc.audio import Audio, SpeechLimits, prepare_speech
from vc.hub import CONFIG_NAME, WEIGHTS_NAME, resolve_model_dir
from vc.mel import MelConfig, MelSpectrogram
from vc.pipeline import KnnRefinement, VoiceConverter, load_vocoder, resolve_run_folder

from .protocol import Trial, same_sentence

SOURCE_LIMITS = SpeechLimits()  # what VoiceConverter applies to a source by default
VOCODER_SEPARATOR = "+"


def file_digest(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _text_digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _model_digest(spec: str) -> str:
    """Digest of a saved model's config and weights ("griffinlim" digests its name)."""
    if spec in ("griffinlim", "griffin-lim", "gl"):
        return _text_digest("griffinlim", json.dumps(MelConfig().__dict__, sort_keys=True, default=str))
    folder = resolve_model_dir(resolve_run_folder(spec))
    return _text_digest(*(file_digest(folder / name) for name in (CONFIG_NAME, WEIGHTS_NAME)))


@dataclass
class ContentSet:
    """A system's content representation of some utterances (for ABX and bitrate)."""
    features: dict[str, "object"]   # utterance id -> (frames, dim) numpy array
    codes: dict[str, "object"] | None  # utterance id -> unit ids, for discrete models
    frame_rate: float
    time_offset: float  # seconds: where frame i's centre lies is (i + 0.5) / rate + offset


class System:
    """One row of the report. Subclasses implement `run` (and `content` where it applies)."""

    kind = "baseline"
    keeps_timing = True  # output frames line up with the source (F0 agreement applies)

    def __init__(self, name: str, description: str, identity: str,
                 model: str | None = None, vocoder: str | None = None):
        self.name, self.description, self.identity = name, description, identity
        self.model, self.vocoder = model, vocoder

    def run(self, trial: Trial) -> Audio:
        raise NotImplementedError

    def references_for(self, trial: Trial) -> Sequence[Path]:
        """The clips the output's similarity to the target is measured against."""
        return trial.reference_paths

    def expected_text(self, trial: Trial) -> str:
        """What the output should say, for WER/CER ("" where unknown)."""
        return trial.source_text

    def mcd_reference(self, trial: Trial) -> Path | None:
        """The target speaker's reading of the same sentence, for MCD (None: not applicable)."""
        return trial.parallel_path

    def trial_key(self, trial: Trial, input_digest) -> str:
        """Content hash of (system, every input file): equal keys give equal outputs."""
        files = [trial.source_path, *trial.reference_paths]
        if trial.parallel_path is not None:
            files.append(trial.parallel_path)
        return _text_digest(self.identity, *(input_digest(p) for p in files))

    def content(self, audio_by_utterance: dict[str, Audio]) -> ContentSet | None:
        """Frame-level content features for ABX (None: not applicable)."""
        return None

    def info(self) -> dict:
        return {"name": self.name, "kind": self.kind, "description": self.description,
                "model": self.model, "vocoder": self.vocoder}


class ModelSystem(System):
    kind = "model"

    def __init__(self, spec: str, device: str = "cpu"):
        model, _, rest = spec.partition(VOCODER_SEPARATOR)
        vocoder, _, options = rest.partition(VOCODER_SEPARATOR)
        vocoder = vocoder or "griffinlim"
        converter_options = parse_converter_options(options)
        self.converter = VoiceConverter.from_pretrained(model, vocoder=vocoder, device=device, **converter_options)
        family = type(self.converter.model).__name__
        extra, identity = describe_converter_options(converter_options)
        super().__init__(spec, f"{family} {model} with {vocoder}{extra}",
                         _text_digest("model", _model_digest(model), _model_digest(vocoder), *identity),
                         model=model, vocoder=vocoder)

    def run(self, trial: Trial) -> Audio:
        return self.converter.convert(trial.source_path, list(trial.reference_paths))

    def content(self, audio_by_utterance: dict[str, Audio]) -> ContentSet:
        converter, features, codes, rate = self.converter, {}, {}, None
        with torch.inference_mode():
            for utt, audio in audio_by_utterance.items():
                mel = converter.mel(audio.resample(converter.sample_rate).to_tensor().to(converter.device))
                frames = converter.model.content_frames(mel)
                features[utt] = frames.features.detach().cpu().double().numpy()
                if frames.codes is not None:
                    codes[utt] = frames.codes.detach().cpu().numpy()
                rate = frames.frame_rate
        # mel frame t is centred on sample t * hop; a code spanning k mel frames sits at their middle
        offset = -0.5 / converter.mel_config.frame_rate
        return ContentSet(features, codes or None, float(rate), offset)


def parse_knn(text: str) -> KnnRefinement:
    """"knn" or "knn:k=4,blend=0.5,min_similarity=0.5" (a system spec's third part)."""
    name, _, settings = text.partition(":")
    if name != "knn":
        raise ValueError(f"{text!r} is not a kNN option; write 'knn' or 'knn:k=4,blend=0.5,min_similarity=0.5'")
    return KnnRefinement(**_parse_settings(settings, _KNN_KEYS, "kNN"))


def _flag(value: str) -> bool:
    if value not in ("0", "1"):
        raise ValueError(value)
    return value == "1"


def _module_names(value: str) -> tuple[str, ...]:
    names = tuple(value.split("/"))
    if not all(names):
        raise ValueError(value)
    return names


_KINDS = {int: ("INT", "a whole number"), float: ("FLOAT", "a number"), _flag: ("0|1", "0 or 1"),
          _module_names: ("NAME/NAME", "module names joined by '/'")}
_KNN_KEYS = {"k": int, "blend": float, "min_similarity": float}
_PHONEMATCH_KEYS = {"prior_frames": float, "smooth_frames": int, "max_spread_ratio": float, "match_spread": _flag}
_ADAPT_KEYS = {"steps": int, "learning_rate": float, "interpolation": float, "modules": _module_names}


def _parse_settings(settings: str, kinds: dict, what: str) -> dict:
    """{"k": 4, "blend": 0.5} from "k=4,blend=0.5": each key once, its value read by its kind in
    `kinds` (int, float or a 0/1 flag); anything else gets a message listing what works."""
    usage = ", ".join(f"{key}={_KINDS[kind][0]}" for key, kind in kinds.items())
    values = {}
    for item in filter(None, settings.split(",")):
        key, _, value = item.partition("=")
        if key not in kinds or not value or key in values:
            raise ValueError(f"bad {what} setting {item!r}; use {usage}, each once")
        try:
            values[key] = kinds[key](value)
        except ValueError:
            raise ValueError(f"bad {what} setting {item!r}: {value!r} is not {_KINDS[kinds[key]][1]}") from None
    return values


OPTION_HELP = ("the options after MODEL+VOCODER, each after a '+': 'transcript[:WHISPER_SIZE]' (Whisper's "
               "forced-aligned transcript gives the phonetic converter its phones), 'encphones[:HEAD]' (phones read from "
               "Whisper's encoder by a trained head, no transcript; default head whisper-phones; both: the head's phones "
               "leaning toward the aligned transcript), 'phonematch[:prior_frames=20,smooth_frames=5]' "
               "(per-phone mean matching to the reference), 'knn[:k=4,blend=0.5,min_similarity=0.5]', and "
               "'adapt[:steps=40,learning_rate=0.0003,interpolation=0.5]' (a few training steps on "
               "the reference first; cloners and the phonetic converter)")


def parse_converter_options(text: str) -> dict:
    """`VoiceConverter` (or `VoiceCloner`) keyword arguments from a system spec's options
    ("transcript+phonematch")."""
    from vc.adaptation import ReferenceAdaptation
    from vc.phone_matching import PhoneMeanMatching

    options: dict = {}
    guides: dict[str, str] = {}
    for part in filter(None, text.split(VOCODER_SEPARATOR)):
        name, _, settings = part.partition(":")
        if name in options or (name == "phonematch" and "phone_matching" in options) or \
                (name == "adapt" and "adaptation" in options):
            raise ValueError(f"the option {name!r} is given twice")
        if name == "knn":
            options["knn"] = parse_knn(part)
        elif name in ("transcript", "encphones"):
            if name in guides:
                raise ValueError(f"the option {name!r} is given twice")
            guides[name] = settings or ("base" if name == "transcript" else "whisper-phones")
        elif name == "phonematch":
            options["phone_matching"] = PhoneMeanMatching(**_parse_settings(settings, _PHONEMATCH_KEYS, "phonematch"))
        elif name == "adapt":
            options["adaptation"] = ReferenceAdaptation(**_parse_settings(settings, _ADAPT_KEYS, "adapt"))
        else:
            raise ValueError(f"unknown system option {part!r}; {OPTION_HELP}")
    if guides:  # both given: the head leaning toward the transcript
        from vc.encoder_phones import phone_guide
        head = f"encoder:{guides['encphones']}" if "encphones" in guides else ""
        options["transcript"] = phone_guide("+".join(filter(None, (guides.get("transcript"), head))))
    return options


def describe_converter_options(options: dict) -> tuple[str, list[str]]:
    """(", what they do" for a system's description, the parts of its identity)."""
    words, identity = [], []
    if "transcript" in options:
        guide = options["transcript"]
        from vc.encoder_phones import EncoderPhones, HybridPhones
        if isinstance(guide, HybridPhones):
            head = guide.name.rpartition(':')[2]
            words.append(f"phones read from Whisper's encoder by the head {head} (bigram weight "
                         f"{guide.head.lm_weight:g}), leaning toward the {guide.transcript.name} transcript "
                         f"forced-aligned (hint weight {guide.hint_weight:g})")
            identity.append(f"hybrid:{guide.name}:lm{guide.head.lm_weight:g}:hint{guide.hint_weight:g}")
        elif isinstance(guide, EncoderPhones):
            words.append(f"phones read from Whisper's encoder by the head {guide.name.partition(':')[2]} "
                         f"(bigram weight {guide.head.lm_weight:g})")
            identity.append(f"encphones:{guide.name}:lm{guide.head.lm_weight:g}")
        else:
            tail = getattr(guide, "tail_seconds", None)
            window = "30 s windows" if tail is None else f"the clip and {tail:g} s of silence encoded"
            words.append(f"phones from the {guide.name} transcript (beam {guide.beam_size}, {window}) forced-aligned")
            identity.append(f"transcript:{guide.name}:beam{guide.beam_size}" + ("" if tail is None else f":tail{tail:g}"))
    if "phone_matching" in options:
        match = options["phone_matching"]
        smooth = "" if match.smooth_frames == 1 else f", shift smoothed over {match.smooth_frames} frames"
        words.append(f"per-phone mean matching to the reference (prior {match.prior_frames:g} frames{smooth})")
        identity.append(repr(match))
    if "adaptation" in options:
        adapt = options["adaptation"]
        learning = ", ".join(adapt.modules) if adapt.modules else "the decoder"
        words.append(f"adapted to the reference ({adapt.steps} steps at {adapt.learning_rate:g} on "
                     f"{learning}, {adapt.interpolation:g} of the way)")
        identity.append(repr(adapt))
    if "knn" in options:
        knn = options["knn"]
        words.append(f"kNN refinement (k={knn.k}, blend={knn.blend}, min_similarity={knn.min_similarity})")
        identity.append(repr(knn))
    return "".join(f", {w}" for w in words), identity


class SourceBaseline(System):
    def __init__(self, sample_rate: int = 16000):
        super().__init__("source", "the source utterance, unconverted (prepared as model input)",
                         _text_digest("source", str(sample_rate)))
        self.sample_rate = sample_rate

    def run(self, trial: Trial) -> Audio:
        return prepare_speech(trial.source_path, self.sample_rate, SOURCE_LIMITS)

    def content(self, audio_by_utterance: dict[str, Audio]) -> ContentSet:
        """The MFCC baseline of ZeroSpeech ABX: 13 MFCCs at 100 frames/s."""
        from .abx import mfcc_features
        clips = {u: a.resample(self.sample_rate).samples for u, a in audio_by_utterance.items()}
        features, rate = mfcc_features(clips, self.sample_rate)
        return ContentSet(features, None, rate, 0.0)


class TargetCeiling(System):
    keeps_timing = False

    def __init__(self, sample_rate: int = 16000):
        super().__init__("target ceiling", "a real utterance of the target speaker: its reading of "
                         "the source sentence where there is one, else its last reference clip",
                         _text_digest("target ceiling", str(sample_rate)))
        self.sample_rate = sample_rate

    def run(self, trial: Trial) -> Audio:
        clip = trial.parallel_path or trial.reference_paths[-1]
        return prepare_speech(clip, self.sample_rate, SOURCE_LIMITS)

    def references_for(self, trial: Trial) -> Sequence[Path]:
        if trial.parallel_path is not None or len(trial.reference_paths) < 2:
            return trial.reference_paths
        return trial.reference_paths[:-1]

    def expected_text(self, trial: Trial) -> str:
        """The source text where the played clip reads the source sentence, else "" (no WER).

        No parallel utterance: the last reference clip says something else, so "". A parallel
        utterance whose transcript is known (`Trial.parallel_text`): the source text only if the
        two are the same sentence after normalisation (case, punctuation and spacing ignored);
        a corpus's sentence id can pair readings whose words differ. A parallel utterance
        without a transcript (a hand-written protocol): the protocol asserts the parallel
        reading, so the source text.
        """
        if trial.parallel_path is None:
            return ""
        if trial.parallel_text and not same_sentence(trial.source_text, trial.parallel_text):
            return ""
        return trial.source_text

    def mcd_reference(self, trial: Trial) -> Path | None:
        return None  # the output is the parallel utterance itself


class ResynthesisBaseline(System):
    def __init__(self, vocoder: str, device: str = "cpu"):
        self.mel_config = MelConfig()
        self.vocoder_module = load_vocoder(vocoder, self.mel_config, device)
        self.mel = MelSpectrogram(self.mel_config).to(device)
        self.device = device
        super().__init__(f"resynthesis ({vocoder})", f"the source through the mel analysis and {vocoder} only",
                         _text_digest("resynthesis", _model_digest(vocoder)), vocoder=vocoder)

    def run(self, trial: Trial) -> Audio:
        source = prepare_speech(trial.source_path, self.mel_config.sample_rate, SOURCE_LIMITS)
        with torch.inference_mode():
            mel = self.mel(source.to_tensor().to(self.device))
            wav = self.vocoder_module(mel)
        return Audio(wav.float().cpu().numpy()[: len(source.samples)], self.mel_config.sample_rate)


def build_systems(models: Sequence[str], baselines: bool = True, device: str = "cpu") -> list[System]:
    """The report's rows: the baselines (source, target ceiling, resynthesis with each vocoder
    the models use) then one system per model spec, in the order given."""
    model_systems = [ModelSystem(spec, device) for spec in models]
    names = [s.name for s in model_systems]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"model(s) given twice: {', '.join(repeated)}")
    if not baselines:
        return list(model_systems)
    vocoders = list(dict.fromkeys(["griffinlim", *(s.vocoder for s in model_systems)]))
    return [SourceBaseline(), TargetCeiling(), *(ResynthesisBaseline(v, device) for v in vocoders),
            *model_systems]

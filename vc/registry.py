"""A list of the models an application offers, loaded lazily and once.

    registry = ModelRegistry.from_file("models.json")
    registry.converter_names()           # what the page lists
    registry.unavailable()               # {"owner/repo": "not in the local cache (offline)"}
    converter = registry.converter("vqvc-small", "hifigan-fast")   # loaded on first use, reused
    cloner = registry.cloner("synth-small", "hifigan-fast")         # text cloning, the same way

The file (JSON) names converters, vocoders and (optionally) cloners, the text-to-mel
synthesizers of text cloning; each has a display `name`, a `source` (a name under checkpoints/,
a folder, or a Hub repo id) and, for Hub models, a pinned `revision`; `default_converter`,
`default_vocoder` and `default_cloner` preselect one of each. "griffinlim" needs no weights.
Entries that cannot be found are reported, not fatal: a page offline still serves the shipped
models and says which others are missing and why.
"""
from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .errors import ModelNotFoundError, VoicelabError
from .hub import resolve_model_dir
from .pipeline import VoiceConverter, load_vocoder

if TYPE_CHECKING:
    from .cloning import VoiceCloner

WEIGHTLESS_VOCODERS = ("griffinlim",)


def _switch_or_settings(raw: Mapping[str, Any], key: str, example: str, where: str) -> dict[str, Any] | None:
    """An entry's optional feature: true (default settings, {}), false or absent (None), or settings."""
    value = raw.get(key)
    if value is True:
        return {}
    if value is None or value is False:
        return None
    if not isinstance(value, Mapping):
        raise VoicelabError(f"{where}: '{key}' is true, false or settings such as {example}; got {value!r}")
    return dict(value)


@dataclass(frozen=True)
class ModelEntry:
    """One model of the registry. Converters may also set `transcript` (a Whisper size whose
    transcript guides a phonetic converter, `vc.transcript_phones`; "encoder[:HEAD]" for the
    phones a trained head reads from Whisper's encoder, "SIZE+encoder[:HEAD]" for both,
    `vc.encoder_phones`) and `phone_matching` (true,
    or the settings of `vc.phone_matching.PhoneMeanMatching`); cloners may set `phone_matching`
    (their reference is then transcribed with `transcript`, default "base"); both may set `adapt`
    (true, or the settings of `vc.adaptation.ReferenceAdaptation`: a few training steps on the
    reference)."""

    name: str
    source: str
    revision: str | None = None
    description: str = ""
    transcript: str | None = None
    phone_matching: Mapping[str, Any] | None = None
    adapt: Mapping[str, Any] | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, Any], where: str) -> "ModelEntry":
        keys = {"name", "source", "revision", "description", "transcript", "phone_matching", "adapt"}
        unknown = set(raw) - keys
        if unknown or "source" not in raw:
            raise VoicelabError(f"{where}: an entry needs 'source' (and may have {', '.join(sorted(keys - {'source'}))}); "
                                f"got keys {sorted(raw)}")
        matching = _switch_or_settings(raw, "phone_matching", '{"prior_frames": 20}', where)
        adapt = _switch_or_settings(raw, "adapt", '{"steps": 40}', where)
        transcript = raw.get("transcript")
        return cls(str(raw.get("name") or raw["source"]), str(raw["source"]), raw.get("revision"),
                   str(raw.get("description", "")), None if transcript is None else str(transcript),
                   matching, adapt)

    def converter_options(self, transcripts: "TranscriptCache") -> dict[str, Any]:
        """What `VoiceConverter` takes for this entry's guidance and matching."""
        options: dict[str, Any] = {}
        if self.transcript:
            options["transcript"] = transcripts.get(self.transcript)
        if self.phone_matching is not None:
            from .phone_matching import PhoneMeanMatching
            try:
                options["phone_matching"] = PhoneMeanMatching(**self.phone_matching)
            except (TypeError, ValueError) as err:
                raise VoicelabError(f"converter {self.name!r}: bad phone_matching settings ({err})") from None
        if self.adapt is not None:
            from .adaptation import ReferenceAdaptation
            try:
                options["adaptation"] = ReferenceAdaptation(**self.adapt)
            except (TypeError, ValueError) as err:
                raise VoicelabError(f"{self.name!r}: bad adapt settings ({err})") from None
        return options


class TranscriptCache:
    """One phone guide per spec (`vc.encoder_phones.phone_guide`), shared by the converters and
    cloners that name it, and one `TranscriptPhones` per Whisper size, shared by the guides
    that transcribe with it."""

    def __init__(self):
        self._guides: dict[str, Any] = {}
        self._transcripts: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, spec: str):
        from .encoder_phones import phone_guide
        with self._lock:
            if spec not in self._guides:
                self._guides[spec] = phone_guide(spec, transcript_for=self._transcript)
            return self._guides[spec]

    def _transcript(self, size: str):
        """The shared transcriber of a Whisper size (called with the lock held)."""
        from .transcript_phones import TranscriptPhones
        if size not in self._transcripts:
            self._transcripts[size] = TranscriptPhones(size)
        return self._transcripts[size]


class ModelRegistry:
    """Converters, vocoders and cloners by display name; `converter()` and `cloner()` load each
    (model, vocoder) pair once.

    Args:
        converters, vocoders: the entries, in the order the page lists them.
        default_converter, default_vocoder: names of the entries to preselect.
        device: where models run.
        cloners: text-to-mel synthesizers for text cloning (none: the page offers no cloning).
        default_cloner: the cloner to preselect (default the first).
        cloner_options: passed to every `VoiceCloner` (e.g. reference_limits, max_chars).
        converter_options: passed to every `VoiceConverter` (e.g. source_limits).
    """

    def __init__(self, converters: Sequence[ModelEntry], vocoders: Sequence[ModelEntry],
                 default_converter: str | None = None, default_vocoder: str | None = None,
                 device: str = "cpu", *, cloners: Sequence[ModelEntry] = (), default_cloner: str | None = None,
                 cloner_options: Mapping[str, Any] | None = None, **converter_options):
        self.converters = {e.name: e for e in converters}
        self.vocoders = {e.name: e for e in vocoders}
        self.cloners = {e.name: e for e in cloners}
        if not self.converters or not self.vocoders:
            raise VoicelabError("a model registry needs at least one converter and one vocoder")
        if default_cloner is not None and default_cloner not in self.cloners:
            raise VoicelabError(f"the default cloner {default_cloner!r} is not one of the cloners "
                                f"({', '.join(self.cloners) or 'none listed'})")
        self.default_converter = default_converter or next(iter(self.converters))
        self.default_vocoder = default_vocoder or next(iter(self.vocoders))
        self.default_cloner = default_cloner or next(iter(self.cloners), None)
        self.device, self.converter_options = device, converter_options
        self.cloner_options = dict(cloner_options or {})
        self._loaded: dict[tuple[str, str], VoiceConverter] = {}
        self._loaded_cloners: dict[tuple[str, str], VoiceCloner] = {}
        self._speaker_encoder = None
        self._phonemizer = None
        self._transcripts = TranscriptCache()
        self._lock = threading.Lock()
        self._missing = {**self._check(self.converters), **self._check(self.vocoders),
                         **self._check(self.cloners)}

    @classmethod
    def from_file(cls, path: str | os.PathLike, device: str = "cpu", *,
                  cloner_options: Mapping[str, Any] | None = None, **converter_options) -> "ModelRegistry":
        path = Path(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise VoicelabError(f"cannot read the model registry {path}: {err}") from None
        entries = {kind: [ModelEntry.parse(e, f"{path}: {kind}[{i}]") for i, e in enumerate(raw.get(kind, []))]
                   for kind in ("converters", "vocoders", "cloners")}
        adapted = [e.name for e in entries["vocoders"] if e.adapt is not None]
        if adapted:
            raise VoicelabError(f"{path}: 'adapt' is a setting of converters and cloners, not vocoders; "
                                f"remove it from {', '.join(adapted)}")
        return cls(entries["converters"], entries["vocoders"], raw.get("default_converter"),
                   raw.get("default_vocoder"), device, cloners=entries["cloners"],
                   default_cloner=raw.get("default_cloner"), cloner_options=cloner_options, **converter_options)

    def _check(self, entries: Mapping[str, ModelEntry]) -> dict[str, str]:
        """Name -> why it cannot be loaded, for entries that cannot be found (Hub ones are
        fetched into the cache here, so a page knows at start which ones it can offer)."""
        missing = {}
        for name, entry in entries.items():
            if entry.source in WEIGHTLESS_VOCODERS:
                continue
            try:
                resolve_model_dir(entry.source, entry.revision)
            except ModelNotFoundError as err:
                missing[name] = str(err)
        return missing

    def unavailable(self) -> dict[str, str]:
        """Entries that cannot be loaded, with the reason."""
        return dict(self._missing)

    def converter_names(self) -> list[str]:
        return [n for n in self.converters if n not in self._missing]

    def vocoder_names(self) -> list[str]:
        return [n for n in self.vocoders if n not in self._missing]

    def cloner_names(self) -> list[str]:
        return [n for n in self.cloners if n not in self._missing]

    def model_folder(self, name: str) -> Path | None:
        """The local folder of an available entry (for its model card), None for Griffin-Lim."""
        entry = self.converters.get(name) or self.vocoders.get(name) or self.cloners.get(name)
        if entry is None or entry.source in WEIGHTLESS_VOCODERS or name in self._missing:
            return None
        return resolve_model_dir(entry.source, entry.revision)

    @property
    def speaker_encoder(self):
        """The GE2E encoder, loaded once and shared by every converter of the registry."""
        with self._lock:
            if self._speaker_encoder is None:
                from .speaker import SpeakerEncoder
                self._speaker_encoder = SpeakerEncoder.pretrained(device=self.device)
            return self._speaker_encoder

    @property
    def phonemizer(self):
        """The text front end's phonemizer (CMUdict + espeak-ng), shared by every cloner."""
        with self._lock:
            if self._phonemizer is None:
                from .text import Lexicon, Phonemizer
                self._phonemizer = Phonemizer(lexicon=Lexicon())
            return self._phonemizer

    def converter(self, model: str, vocoder: str) -> VoiceConverter:
        """The converter for (model, vocoder), loaded on first request and then reused."""
        self._check_choice(model, "model", self.converters)
        self._check_choice(vocoder, "vocoder", self.vocoders)
        encoder = self.speaker_encoder
        with self._lock:  # two first requests for one pair load it once
            key = (model, vocoder)
            if key not in self._loaded:
                entry = self.converters[model]
                self._loaded[key] = VoiceConverter.from_pretrained(
                    resolve_model_dir(entry.source, entry.revision), vocoder=self._vocoder_spec(vocoder),
                    device=self.device, speaker_encoder=encoder,
                    **{**entry.converter_options(self._transcripts), **self.converter_options})
            return self._loaded[key]

    def cloner(self, model: str, vocoder: str) -> "VoiceCloner":
        """The text cloner for (synthesizer, vocoder), loaded on first request and then reused;
        it shares the registry's speaker encoder."""
        from .cloning import VoiceCloner

        if not self.cloners:
            raise ModelNotFoundError("no text cloner is installed: add a synthesizer to the \"cloners\" "
                                     "list of the model registry (models.json)")
        self._check_choice(model, "cloner", self.cloners)
        self._check_choice(vocoder, "vocoder", self.vocoders)
        encoder, phonemizer = self.speaker_encoder, self.phonemizer  # each takes the lock itself
        with self._lock:
            key = (model, vocoder)
            if key not in self._loaded_cloners:
                entry = self.cloners[model]
                guidance = entry.converter_options(self._transcripts)
                if {"phone_matching", "adaptation"} & set(guidance) and "transcript" not in guidance:
                    guidance["transcript"] = self._transcripts.get("base")  # it labels the reference
                options = {"phonemizer": phonemizer, **guidance, **self.cloner_options}
                self._loaded_cloners[key] = VoiceCloner.from_pretrained(
                    resolve_model_dir(entry.source, entry.revision), vocoder=self._vocoder_spec(vocoder),
                    device=self.device, speaker_encoder=encoder, **options)
            return self._loaded_cloners[key]

    def _check_choice(self, name: str, kind: str, table: Mapping[str, ModelEntry]) -> None:
        if name not in table:
            raise ModelNotFoundError(f"unknown {kind} {name!r}; choose one of: {', '.join(table)}")
        if name in self._missing:
            raise ModelNotFoundError(f"the {kind} {name!r} is unavailable: {self._missing[name]}")

    def _vocoder_spec(self, name: str):
        """What a front object takes as its vocoder: the weightless one's name, or the loaded
        module (each pair gets its own copy)."""
        entry = self.vocoders[name]
        if entry.source in WEIGHTLESS_VOCODERS:
            return entry.source
        return load_vocoder(resolve_model_dir(entry.source, entry.revision), device=self.device)

"""Per-trial scores of one output clip: similarity, intelligibility, MCD, intonation.

`Scorer.score(system, trial, output)` returns plain numbers for one report row. Set-level
figures (verification accept rate, ABX, bitrate) are computed later from these rows and from
`Scorer.input_embedding`, which caches the embeddings of the protocol's real clips by content.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import jiwer
import numpy as np

from vc.audio import Audio, prepare_speech
from vc.hub import write_text_atomically
from vc.mel import MelConfig, MelSpectrogram
from vc.speaker import SpeakerEncoder, cosine

from .intelligibility import normalize_text
from .metrics import f0_contour, log_f0_agreement, mel_cepstral_distortion
from .protocol import Trial
from .systems import SOURCE_LIMITS, System, TargetCeiling, file_digest

# name -> (label, better, unit): what report readers see
METRICS = {
    "secs": ("Similarity to target (GE2E cosine)", "higher", "cosine"),
    "secs_to_source": ("Similarity to source (GE2E cosine)", "lower", "cosine"),
    "sv_accept": ("Accepted as the target at the EER threshold", "higher", "fraction"),
    "wer": ("Word error rate of ASR on the output", "lower", "fraction"),
    "cer": ("Character error rate of ASR on the output", "lower", "fraction"),
    "mcd": ("Mel-cepstral distortion to the target's parallel utterance (DTW)", "lower", "dB"),
    "f0_corr": ("Log-F0 correlation with the source (intonation kept)", "higher", "r"),
    "f0_rmse": ("Log-F0 RMSE to the source after mean/variance matching", "lower", "semitones"),
    "abx_within": ("ABX error within speaker, on the model's content features", "lower", "fraction"),
    "abx_across": ("ABX error across speakers, on the model's content features", "lower", "fraction"),
    "bitrate": ("Bitrate of the model's discrete units", "lower", "bits/s"),
    "dnsmos_ovrl": ("DNSMOS overall quality (P.835 OVRL)", "higher", "MOS 1-5"),
    "dnsmos_sig": ("DNSMOS speech signal quality (P.835 SIG)", "higher", "MOS 1-5"),
    "dnsmos_bak": ("DNSMOS background noise (P.835 BAK)", "higher", "MOS 1-5"),
    "dnsmos_p808": ("DNSMOS P.808 MOS", "higher", "MOS 1-5"),
    "rtf": ("Real-time factor: compute seconds per output second", "lower", "ratio"),
    "peak_mem_mb": ("Peak extra memory while converting", "lower", "MB"),
}
# what a user may ask for on the command line; a group stands for its members
METRIC_GROUPS = {
    "similarity": ("secs", "secs_to_source", "sv_accept"),
    "intelligibility": ("wer", "cer"),
    "mcd": ("mcd",),
    "f0": ("f0_corr", "f0_rmse"),
    "abx": ("abx_within", "abx_across"),
    "bitrate": ("bitrate",),
    "naturalness": ("dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808"),
    "speed": ("rtf", "peak_mem_mb"),
}
for _name in METRICS:
    METRIC_GROUPS.setdefault(_name, (_name,))
# per-trial values that need work beyond running the system
TRIAL_METRICS = ("secs", "secs_to_source", "wer", "cer", "mcd", "f0_corr", "f0_rmse",
                 "dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808")
NATURALNESS_METRICS = METRIC_GROUPS["naturalness"]


def expand_metrics(names: Sequence[str] | None) -> list[str]:
    """Metric names (or groups) -> the metric names, in report order; None means all."""
    if not names:
        return list(METRICS)
    unknown = [n for n in names if n not in METRIC_GROUPS]
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(METRIC_GROUPS)}")
    wanted = {m for n in names for m in METRIC_GROUPS[n]}
    if "sv_accept" in wanted:
        wanted.add("secs")  # the accept rate is read off the similarity
    return [m for m in METRICS if m in wanted]


class Scorer:
    """Scores outputs; the GE2E encoder and the ASR are loaded once and shared by all systems.

    Args:
        metrics: metric names (see `expand_metrics`).
        recogniser: an `eval.asr` recogniser, needed for wer/cer (None leaves them out).
        rater: an `eval.naturalness` rater (DnsMos), needed for the dnsmos_* metrics.
        cache_dir: where embeddings and F0 contours of input clips are kept between runs.
        asr_reference: score a source that has no transcript against the recogniser's
            transcript of the unconverted source (folder protocols; see `Protocol`).
    """

    def __init__(self, metrics: Sequence[str], recogniser=None, device: str = "cpu",
                 cache_dir: str | os.PathLike | None = None, rater=None, asr_reference: bool = False):
        self.metrics = set(metrics)
        self.recogniser = recogniser
        self.asr_name = getattr(recogniser, "name", None)
        self.rater = rater
        self.asr_reference = asr_reference
        self.transcripts_path = Path(cache_dir) / "source-transcripts.json" if cache_dir else None
        self._transcripts: dict[str, str] = self._read_json(self.transcripts_path)
        self.mel_config = MelConfig()
        self.mel = MelSpectrogram(self.mel_config)
        needs_encoder = self.metrics & {"secs", "secs_to_source", "sv_accept"}
        self.encoder = SpeakerEncoder.pretrained(device=device) if needs_encoder else None
        self.cache_path = Path(cache_dir) / "input-embeddings.json" if cache_dir else None
        self._embeddings: dict[str, list[float]] = self._read_json(self.cache_path)
        self._digests: dict[Path, str] = {}
        self._f0: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------ inputs, cached by content
    def digest(self, path: Path) -> str:
        path = Path(path)
        if path not in self._digests:
            self._digests[path] = file_digest(path)
        return self._digests[path]

    def input_embedding(self, path: Path) -> np.ndarray:
        key = self.digest(path)
        if key not in self._embeddings:
            self._embeddings[key] = self.encoder.embed(path).tolist()
        return np.asarray(self._embeddings[key], dtype=np.float32)

    def target_embedding(self, paths: Sequence[Path]) -> np.ndarray:
        mean = np.mean([self.input_embedding(p) for p in paths], axis=0)
        return mean / np.linalg.norm(mean)

    def save_cache(self) -> None:
        if self.cache_path is not None and self._embeddings:
            write_text_atomically(self.cache_path, json.dumps(self._embeddings))
        if self.transcripts_path is not None and self._transcripts:
            write_text_atomically(self.transcripts_path, json.dumps(self._transcripts, ensure_ascii=False))

    @staticmethod
    def _read_json(path: Path | None) -> dict:
        if path is None or not path.is_file():
            return {}
        try:
            return dict(json.loads(path.read_text()))
        except (ValueError, TypeError):  # a damaged cache is rebuilt, not trusted
            return {}

    def expected_text(self, system: System, trial: Trial) -> str:
        """What `system`'s output of `trial` should say: the system's own rule (the source
        transcript; the target ceiling only where it reads the source sentence), else, with
        `asr_reference`, the recogniser's transcript of the unconverted source."""
        text = system.expected_text(trial)
        if text or not self.asr_reference or trial.source_text or isinstance(system, TargetCeiling) \
                or self.recogniser is None:
            return text
        key = f"{self.asr_name}:{self.digest(trial.source_path)}"
        if key not in self._transcripts:
            self._transcripts[key] = self.recogniser.transcribe(self._prepared_source(trial))
        return self._transcripts[key]

    def _prepared_source(self, trial: Trial) -> Audio:
        """The source as a converter receives it (trimmed, level-normalised): outputs keep its
        timing, so F0 and similarity to the source are measured against it."""
        return prepare_speech(trial.source_path, self.mel_config.sample_rate, SOURCE_LIMITS)

    def _source_embedding(self, trial: Trial) -> np.ndarray:
        key = "prepared:" + self.digest(trial.source_path)
        if key not in self._embeddings:
            self._embeddings[key] = self.encoder.embed(self._prepared_source(trial)).tolist()
        return np.asarray(self._embeddings[key], dtype=np.float32)

    def _source_f0(self, trial: Trial) -> np.ndarray:
        key = self.digest(trial.source_path)
        if key not in self._f0:
            source = self._prepared_source(trial)
            self._f0[key] = f0_contour(source.samples, source.sample_rate, self.mel_config.hop_length)
        return self._f0[key]

    def _log_mel(self, audio: Audio) -> np.ndarray:
        clip = audio.resample(self.mel_config.sample_rate)
        return self.mel(clip.to_tensor()).numpy()

    # ------------------------------------------------------------------ one output
    def score(self, system: System, trial: Trial, output: Audio) -> tuple[dict[str, float], str | None]:
        """(metric values, ASR transcript or None) for one output. A metric that does not apply
        to this trial (no transcript, no parallel utterance, ...) is left out."""
        values: dict[str, float] = {}
        wanted = self.metrics
        if wanted & {"secs", "secs_to_source", "sv_accept"}:
            embedding = self.encoder.embed(output)
            values["secs"] = cosine(embedding, self.target_embedding(system.references_for(trial)))
            if "secs_to_source" in wanted:
                values["secs_to_source"] = cosine(embedding, self._source_embedding(trial))
        transcript = None
        text = normalize_text(self.expected_text(system, trial)) if wanted & {"wer", "cer"} else ""
        if wanted & {"wer", "cer"} and self.recogniser is not None and text:
            transcript = self.recogniser.transcribe(output)
            values.update(error_counts(text, normalize_text(transcript)))
        reference = system.mcd_reference(trial)
        if "mcd" in wanted and reference is not None:
            target = prepare_speech(reference, self.mel_config.sample_rate, SOURCE_LIMITS)
            values["mcd"] = mel_cepstral_distortion(self._log_mel(target), self._log_mel(output))
        if wanted & {"f0_corr", "f0_rmse"} and system.keeps_timing:
            clip = output.resample(self.mel_config.sample_rate)
            out_f0 = f0_contour(clip.samples, clip.sample_rate, self.mel_config.hop_length)
            try:
                agreement = log_f0_agreement(self._source_f0(trial), out_f0)
                values["f0_corr"], values["f0_rmse"] = agreement["corr"], agreement["rmse_semitones"]
            except ValueError:
                pass  # too few frames voiced in both: intonation cannot be compared
        if wanted & set(NATURALNESS_METRICS) and self.rater is not None:
            values.update((k, v) for k, v in self.rater.rate(output).items() if k in wanted)
        return values, transcript


def error_counts(reference: str, hypothesis: str) -> dict[str, float]:
    """Word and character errors of one normalised transcript pair, with their rates; the
    counts let the report pool errors over trials (corpus-level WER) rather than average rates."""
    words = jiwer.process_words(reference, hypothesis)
    chars = jiwer.process_characters(reference, hypothesis)
    word_errors = words.substitutions + words.deletions + words.insertions
    char_errors = chars.substitutions + chars.deletions + chars.insertions
    n_words, n_chars = len(reference.split()), len(reference)
    return {"wer": word_errors / n_words, "cer": char_errors / n_chars,
            "word_errors": float(word_errors), "words": float(n_words),
            "char_errors": float(char_errors), "chars": float(n_chars)}

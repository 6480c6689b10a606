"""Features for training: log-mels and speaker embeddings, computed once and cached on disk.

Each utterance's mel (for the model's `MelConfig`) and GE2E embedding are stored in the cache
folder under a key made of the file's path, size, modification time and the mel settings, so
later runs, epochs and resumed runs never recompute them. Families that learn from frame-level
targets (`ConversionModel.frame_targets`) also get, per mel frame, "phones" (indices of
`vc.data.phones.PHONES` from the utterance's alignment, -1 where it has none) and "f0"
(z-scored log-F0 as "lf0" and a "voiced" flag, from pYIN); their mels are computed on the
untrimmed clip so the alignment's times hold. Batches are random fixed-length
segments drawn with a generator seeded by (seed, step), which makes a resumed run draw exactly
the batches the uninterrupted run would have drawn.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from vc.audio import prepare_speech
from vc.data import Utterance
from vc.data.phones import PhoneSetError, frame_labels
from vc.errors import AudioError
from vc.mel import MelConfig, MelSpectrogram
from vc.pitch import f0_contour, normalized_log_f0
from vc.speaker import SpeakerEncoder

FRAME_TARGETS = ("phones", "f0")
# per-frame arrays each target adds, and what pads a segment past the end of an utterance
FRAME_ARRAYS = {"phones": {"phones": -1}, "f0": {"lf0": 0.0, "voiced": 0.0}}


@dataclass
class UtteranceFeatures:
    utterance: Utterance
    mel: torch.Tensor          # (n_mels, frames)
    embedding: torch.Tensor    # (256,) GE2E embedding of this utterance
    speaker_index: int
    frames: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> (frames,) targets


def cache_key(path: Path, mel: MelConfig, targets: Sequence[str] = ()) -> str:
    stat = path.stat()
    ident = [str(path.resolve()), stat.st_size, stat.st_mtime_ns, mel.to_dict()]
    if targets:  # untrimmed mels plus targets: another entry than the plain features
        ident.append(sorted(targets))
    return hashlib.sha1(json.dumps(ident).encode()).hexdigest()


def _frame_targets(utt: Utterance, audio, frames: int, mel: MelConfig,
                   targets: Sequence[str]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    if "phones" in targets:
        labels = np.full(frames, -1, dtype=np.int64)
        if utt.alignment:
            try:
                labels = np.asarray(frame_labels(utt.alignment, frames, mel.frame_rate,
                                                 utt.extra.get("phoneset", "arpabet")), dtype=np.int64)
            except PhoneSetError as error:
                warnings.warn(f"{utt.path.name}: alignment left out ({error})")
        out["phones"] = labels
    if "f0" in targets:
        contour = f0_contour(audio.samples, audio.sample_rate, mel.hop_length)[:frames]
        contour = np.pad(contour, (0, frames - len(contour)), constant_values=np.nan)
        out["lf0"], out["voiced"] = normalized_log_f0(contour)
    return out


def load_cached(entry: Path, names: Sequence[str]) -> dict[str, np.ndarray] | None:
    """The arrays `names` of a cache entry, or None when it is missing; a damaged entry is
    deleted (so it is computed again) and also gives None."""
    if not entry.exists():
        return None
    try:
        with np.load(entry) as data:
            return {name: data[name] for name in names}
    except (OSError, ValueError, KeyError):
        entry.unlink(missing_ok=True)
        return None


def save_atomically(path: Path, **arrays: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
    os.replace(tmp, path)


def compute_features(utterances: Sequence[Utterance], mel: MelConfig, cache_dir: str | Path,
                     encoder: SpeakerEncoder | None = None, progress: bool = True,
                     frame_targets: Sequence[str] = ()) -> tuple[list[UtteranceFeatures], list[str]]:
    """Mel + embedding (+ `frame_targets`) of every usable utterance (from the cache where
    possible).

    Returns the features and the ordered list of speaker ids (`speaker_index` indexes it).
    Utterances that are unusable as speech (silent, too short, unreadable) are skipped with a
    warning that says which and why.
    """
    unknown = sorted(set(frame_targets) - set(FRAME_TARGETS))
    if unknown:
        raise ValueError(f"unknown frame targets {unknown}; known: {', '.join(FRAME_TARGETS)}")
    arrays = [name for target in frame_targets for name in FRAME_ARRAYS[target]]
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    mel_fn = MelSpectrogram(mel)
    speakers = sorted({u.speaker for u in utterances})
    index = {s: i for i, s in enumerate(speakers)}
    features, skipped = [], []
    for utt in tqdm(utterances, desc="features", unit="utt", disable=not progress):
        entry = cache / f"{cache_key(utt.path, mel, frame_targets)}.npz"
        cached = load_cached(entry, ["mel", "embedding", *arrays])
        if cached is not None:
            features.append(UtteranceFeatures(
                utt, torch.from_numpy(cached["mel"]), torch.from_numpy(cached["embedding"]),
                index[utt.speaker], {name: torch.from_numpy(cached[name]) for name in arrays}))
            continue
        try:
            # frame targets need the clip's own time axis, so their mels are not trimmed
            audio = prepare_speech(utt.path, mel.sample_rate, trim=not frame_targets)
            if encoder is None:
                encoder = SpeakerEncoder.pretrained()
            embedding = encoder.embed(audio)
        except AudioError as error:
            skipped.append(f"{utt.path.name}: {error}")
            continue
        with torch.inference_mode():
            frames = mel_fn(audio.to_tensor()).numpy()
        targets = _frame_targets(utt, audio, frames.shape[-1], mel, frame_targets)
        save_atomically(entry, mel=frames, embedding=embedding, **targets)
        features.append(UtteranceFeatures(utt, torch.from_numpy(frames), torch.from_numpy(embedding),
                                          index[utt.speaker], {k: torch.from_numpy(v) for k, v in targets.items()}))
    if skipped:
        warnings.warn(f"skipped {len(skipped)} unusable utterance(s), e.g. {skipped[:3]}")
    if not features:
        raise AudioError("no usable utterances: every file was silent, too short or unreadable")
    return features, speakers


def speaker_embeddings(features: Sequence[UtteranceFeatures]) -> dict[int, torch.Tensor]:
    """Per speaker: the renormalised mean of its utterances' embeddings (as AutoVC trains)."""
    sums: dict[int, torch.Tensor] = {}
    for f in features:
        sums[f.speaker_index] = sums.get(f.speaker_index, 0) + f.embedding
    return {k: v / v.norm() for k, v in sums.items()}


class SegmentBatches:
    """Random fixed-length mel segments, reproducible from (seed, step).

    Args:
        features: the utterances to draw from.
        segment_frames: frames per segment; shorter utterances are padded with silence
            (the log floor), longer ones cropped at a random offset.
        batch_size: segments per batch.
        seed: the base seed; `batch(step)` depends only on it, the step and `rank`.
    """

    def __init__(self, features: Sequence[UtteranceFeatures], segment_frames: int,
                 batch_size: int, seed: int, silence: float, rank: int = 0):
        if not features:
            raise ValueError("no utterances to draw batches from")
        self.features = list(features)
        self.segment_frames, self.batch_size = segment_frames, batch_size
        self.seed, self.rank, self.silence = seed, rank, silence
        self.speaker_embedding = speaker_embeddings(self.features)

    def _segment(self, feature: UtteranceFeatures, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """The mel segment and the same frames of every per-frame target."""
        mel, frames = feature.mel, feature.mel.shape[-1]
        if frames >= self.segment_frames:
            start = int(torch.randint(0, frames - self.segment_frames + 1, (1,), generator=generator))
            out = {"mel": mel[:, start:start + self.segment_frames]}
            out.update((k, v[start:start + self.segment_frames]) for k, v in feature.frames.items())
            return out
        missing = self.segment_frames - frames
        out = {"mel": torch.cat([mel, torch.full((mel.shape[0], missing), self.silence)], dim=1)}
        for name, values in feature.frames.items():
            pad = next(p[name] for p in FRAME_ARRAYS.values() if name in p)
            out[name] = torch.cat([values, torch.full((missing,), pad, dtype=values.dtype)])
        return out

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step * 31 + self.rank)
        picks = torch.randint(0, len(self.features), (self.batch_size,), generator=generator)
        chosen = [self.features[int(i)] for i in picks]
        segments = [self._segment(f, generator) for f in chosen]
        batch = {name: torch.stack([s[name] for s in segments]) for name in segments[0]}
        batch["embedding"] = torch.stack([self.speaker_embedding[f.speaker_index] for f in chosen])
        batch["speaker"] = torch.tensor([f.speaker_index for f in chosen])
        return batch

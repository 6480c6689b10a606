"""Features for training: log-mels and speaker embeddings, computed once and cached on disk.

Each utterance's mel (for the model's `MelConfig`) and GE2E embedding are stored in the cache
folder under a key made of the file's path, size, modification time and the mel settings, so
later runs, epochs and resumed runs never recompute them. Batches are random fixed-length
segments drawn with a generator seeded by (seed, step), which makes a resumed run draw exactly
the batches the uninterrupted run would have drawn.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from vc.audio import prepare_speech
from vc.data import Utterance
from vc.errors import AudioError
from vc.mel import MelConfig, MelSpectrogram
from vc.speaker import SpeakerEncoder


@dataclass
class UtteranceFeatures:
    utterance: Utterance
    mel: torch.Tensor          # (n_mels, frames)
    embedding: torch.Tensor    # (256,) GE2E embedding of this utterance
    speaker_index: int


def cache_key(path: Path, mel: MelConfig) -> str:
    stat = path.stat()
    ident = json.dumps([str(path.resolve()), stat.st_size, stat.st_mtime_ns, mel.to_dict()])
    return hashlib.sha1(ident.encode()).hexdigest()


def save_atomically(path: Path, **arrays: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
    os.replace(tmp, path)


def compute_features(utterances: Sequence[Utterance], mel: MelConfig, cache_dir: str | Path,
                     encoder: SpeakerEncoder | None = None, progress: bool = True
                     ) -> tuple[list[UtteranceFeatures], list[str]]:
    """Mel + embedding of every usable utterance (from the cache where possible).

    Returns the features and the ordered list of speaker ids (`speaker_index` indexes it).
    Utterances that are unusable as speech (silent, too short, unreadable) are skipped with a
    warning that says which and why.
    """
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    mel_fn = MelSpectrogram(mel)
    speakers = sorted({u.speaker for u in utterances})
    index = {s: i for i, s in enumerate(speakers)}
    features, skipped = [], []
    for utt in tqdm(utterances, desc="features", unit="utt", disable=not progress):
        entry = cache / f"{cache_key(utt.path, mel)}.npz"
        if entry.exists():
            try:
                with np.load(entry) as data:
                    features.append(UtteranceFeatures(
                        utt, torch.from_numpy(data["mel"]), torch.from_numpy(data["embedding"]),
                        index[utt.speaker]))
                continue
            except (OSError, ValueError, KeyError):
                entry.unlink(missing_ok=True)  # a damaged cache entry is recomputed
        try:
            audio = prepare_speech(utt.path, mel.sample_rate)
            if encoder is None:
                encoder = SpeakerEncoder.pretrained()
            embedding = encoder.embed(audio)
        except AudioError as error:
            skipped.append(f"{utt.path.name}: {error}")
            continue
        with torch.inference_mode():
            frames = mel_fn(audio.to_tensor()).numpy()
        save_atomically(entry, mel=frames, embedding=embedding)
        features.append(UtteranceFeatures(utt, torch.from_numpy(frames),
                                          torch.from_numpy(embedding), index[utt.speaker]))
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

    def _segment(self, mel: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        frames = mel.shape[-1]
        if frames >= self.segment_frames:
            start = int(torch.randint(0, frames - self.segment_frames + 1, (1,), generator=generator))
            return mel[:, start:start + self.segment_frames]
        pad = torch.full((mel.shape[0], self.segment_frames - frames), self.silence)
        return torch.cat([mel, pad], dim=1)

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step * 31 + self.rank)
        picks = torch.randint(0, len(self.features), (self.batch_size,), generator=generator)
        chosen = [self.features[int(i)] for i in picks]
        return {
            "mel": torch.stack([self._segment(f.mel, generator) for f in chosen]),
            "embedding": torch.stack([self.speaker_embedding[f.speaker_index] for f in chosen]),
            "speaker": torch.tensor([f.speaker_index for f in chosen]),
        }

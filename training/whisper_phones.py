"""Training the phone head on Whisper's encoder (`vc.models.whisper_phones`).

    python -m training whisper-phones --data data/aligned/librispeech-train.jsonl \\
        data/aligned/ljspeech-train.jsonl --steps 3000 --out runs/whisper-phones [--resume]

Whisper stays frozen, so its encoder output is computed once per utterance and cached (the clip
plus the head's `tail_seconds` of silence, as at inference); training then only moves the small
head, a few minutes on a CPU. Labels are the utterances' phone alignments at Whisper's 50 frames
per second: the synthetic corpus's exact ones, pocketsphinx's forced ones for real speech
(`python -m vc.data align`). A share of the speakers (with any voice shifted from them) is held
out, and the head's frame accuracy on them is logged, plotted and put in the model card.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from vc.data.phones import PHONES, SILENCE, PhoneSetError, frame_labels
from vc.data.readers import split_by_speaker
from vc.errors import CheckpointError, VoicelabError
from vc.hub import push_to_hub
from vc.models.whisper_phones import WhisperPhoneHead

from .checkpoint import (
    load_resume_state,
    remove_interrupted_writes,
    restore_training_state,
    rng_state,
    save_resume_state,
)
from .features import load_cached, save_atomically
from .logs import RunLog, plot_losses
from .loop import DATASET_IDS, load_utterances

FRAME_RATE = 50.0  # Whisper's encoder frames per second
SETTINGS_THAT_MAY_CHANGE = ("log_every", "validate_every", "checkpoint_every")


@dataclass(frozen=True)
class WhisperPhonesConfig:
    """The head's preset and the training settings."""

    preset: str = "small"
    whisper: str = "base"
    tail_seconds: float = 1.0
    lm_weight: float = 0.3
    batch_size: int = 16
    crop_frames: int = 200
    lr: float = 1e-3
    warmup_steps: int = 100
    weight_decay: float = 0.01
    val_fraction: float = 0.05
    seed: int = 0
    log_every: int = 50
    validate_every: int = 500
    checkpoint_every: int = 500

    def __post_init__(self):
        if self.preset not in WhisperPhoneHead.presets:
            raise ValueError(f"unknown preset {self.preset!r}; presets: {sorted(WhisperPhoneHead.presets)}")
        for name in ("batch_size", "crop_frames", "warmup_steps", "log_every", "validate_every", "checkpoint_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.lm_weight <= 10:
            raise ValueError(f"lm_weight must be in [0, 10], got {self.lm_weight}")
        if not 0 < self.lr < 1 or not 0 <= self.val_fraction < 1:
            raise ValueError(f"lr must be in (0, 1) and val_fraction in [0, 1); got {self.lr}, {self.val_fraction}")


def encoder_features(utterances, whisper, tail_seconds: float, cache_dir: Path, progress: bool = True
                     ) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[str]]:
    """(features (frames, width) float16, labels (frames,) int64) per aligned utterance, from
    the cache when there, and the paths left out (no alignment, or a phone no mapping knows)."""
    folder = Path(cache_dir) / f"whisper-{whisper.model_name}-tail{tail_seconds:g}"
    folder.mkdir(parents=True, exist_ok=True)
    items, skipped = [], []
    for utterance in tqdm(utterances, desc="Whisper encoder features", unit="utt", disable=not progress):
        if not utterance.alignment:
            skipped.append(str(utterance.path))
            continue
        stat = Path(utterance.path).stat()
        key = hashlib.sha1(f"{Path(utterance.path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
        entry = folder / f"{key}.npz"
        cached = load_cached(entry, ["features"])  # a damaged entry is computed again
        if cached is not None:
            features = cached["features"]
        else:
            features = whisper.encode(utterance.path, tail_seconds).astype(np.float16)
            save_atomically(entry, features=features)
        try:
            labels = frame_labels(utterance.alignment, len(features), FRAME_RATE,
                                  utterance.extra.get("phoneset", "arpabet"))
        except PhoneSetError:
            skipped.append(str(utterance.path))
            continue
        items.append((features, np.asarray(labels, dtype=np.int64)))
    return items, skipped


def warmup_factor(step: int, warmup_steps: int) -> float:
    """The learning-rate factor: a linear warm-up, then constant. It does not depend on the run's
    length, so a run continued to more steps takes the same steps as one run straight there."""
    return min(1.0, (step + 1) / max(1, warmup_steps))


class FrameBatches:
    """Random crops of `crop_frames` frames, reproducible from (seed, step)."""

    def __init__(self, items: Sequence[tuple[np.ndarray, np.ndarray]], batch_size: int, crop_frames: int, seed: int):
        if not items:
            raise VoicelabError("no utterance has a usable phone alignment; the phone head learns from "
                                "aligned speech: a synthetic corpus, or real speech aligned with "
                                "`python -m vc.data align`")
        self.items, self.batch_size, self.crop, self.seed = items, batch_size, crop_frames, seed

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, step])
        width = self.items[0][0].shape[1]
        features = np.zeros((self.batch_size, width, self.crop), np.float32)
        labels = np.zeros((self.batch_size, self.crop), np.int64)
        mask = np.zeros((self.batch_size, self.crop), bool)
        for b, i in enumerate(rng.integers(0, len(self.items), self.batch_size)):
            x, y = self.items[i]
            start = int(rng.integers(0, max(1, len(y) - self.crop + 1)))
            n = min(self.crop, len(y) - start)
            features[b, :, :n] = x[start:start + n].T
            labels[b, :n], mask[b, :n] = y[start:start + n], True
        return {"features": torch.from_numpy(features), "labels": torch.from_numpy(labels),
                "mask": torch.from_numpy(mask)}


@torch.no_grad()
def frame_accuracy(head: WhisperPhoneHead, items: Sequence[tuple[np.ndarray, np.ndarray]]) -> float:
    """Share of frames whose most likely phone is the aligned one, over whole utterances."""
    was_training = head.training
    head.eval()
    right = total = 0
    for features, labels in items:
        predicted = head(torch.from_numpy(features.T.astype(np.float32))[None]).argmax(1)[0].numpy()
        right += int((predicted == labels).sum())
        total += len(labels)
    head.train(was_training)
    return right / max(total, 1)


def phone_error_rate(head: WhisperPhoneHead, items: Sequence[tuple[np.ndarray, np.ndarray]]) -> float:
    """Edit distance between the phone sequences `head.read` decodes (bigram, no hint) and the
    aligned ones, repeats merged and silences dropped, per aligned phone."""
    import jiwer

    def sequence(labels) -> str:
        merged = [p for i, p in enumerate(labels) if i == 0 or p != labels[i - 1]]
        return " ".join(PHONES[p] for p in merged if PHONES[p] != SILENCE) or SILENCE

    was_training = head.training
    head.eval()
    truth, found = zip(*[(sequence(labels), sequence(head.read(features))) for features, labels in items])
    head.train(was_training)
    return float(jiwer.wer(list(truth), list(found)))


class WhisperPhonesTrainer:
    """Trains a `WhisperPhoneHead`; see the module docstring.

    Args:
        config: the settings.
        data: corpora with phone alignments (anything `vc.data.read_corpus` reads).
        out: the run folder; `steps`: train until this step; `resume`: continue the run in `out`.
        cache_dir: the encoder-feature cache (default RUN_DIR/../.feature-cache).
        whisper: a loaded `vc.asr.Whisper` to reuse (default: loaded here).
    """

    def __init__(self, config: WhisperPhonesConfig, data: Sequence[str | Path], out: str | Path, steps: int, *,
                 resume: bool = False, cache_dir: str | Path | None = None, push_to_hub: str | None = None,
                 progress: bool = True, whisper=None):
        if int(steps) < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        if not data:
            raise ValueError("no training data given; pass aligned corpora or manifests with --data")
        self.config, self.steps, self.data = config, int(steps), [str(d) for d in data]
        self.out, self.resume, self.progress = Path(out), resume, progress
        self.cache_dir = Path(cache_dir) if cache_dir else self.out.parent / ".feature-cache"
        self.push_repo, self._whisper = push_to_hub, whisper

    def _identity(self) -> dict[str, Any]:
        settings = {k: v for k, v in dataclasses.asdict(self.config).items() if k not in SETTINGS_THAT_MAY_CHANGE}
        return {"family": "whisper-phones", "config": settings, "data": self.data}

    def _check_run_folder(self) -> dict[str, Any] | None:
        self.out.mkdir(parents=True, exist_ok=True)
        remove_interrupted_writes(self.out)
        state = load_resume_state(self.out)
        if state is not None and not self.resume:
            raise CheckpointError(f"'{self.out}' already holds a run at step {state['step']}; pass "
                                  "--resume to continue it, or choose another --out")
        if state is not None and state.get("run") != self._identity():
            raise CheckpointError(f"'{self.out}' was trained with other data or settings (see "
                                  f"{self.out / 'run_config.json'}); resume with the same ones, or choose another --out")
        (self.out / "run_config.json").write_text(json.dumps(self._identity(), indent=2) + "\n")
        return state

    def _prepare_data(self):
        cfg = self.config
        if self._whisper is None:
            from vc.asr import Whisper
            self._whisper = Whisper(cfg.whisper)
        utterances = load_utterances(self.data)
        roots = {str(u.extra.get("shifted_from") or u.speaker) for u in utterances}
        if cfg.val_fraction and len(roots) < 2:
            warnings.warn("one speaker only: nothing to hold out, so no validation accuracy")
            train, val = list(utterances), []
        else:
            train, val = split_by_speaker(utterances, cfg.val_fraction, cfg.seed)
        self.speakers = len({u.speaker for u in train})
        self.datasets = sorted({DATASET_IDS[u.corpus] for u in utterances if u.corpus in DATASET_IDS})
        items, skipped = encoder_features(train, self._whisper, cfg.tail_seconds, self.cache_dir, self.progress)
        val_items, val_skipped = encoder_features(val, self._whisper, cfg.tail_seconds, self.cache_dir, self.progress)
        if skipped or val_skipped:
            warnings.warn(f"{len(skipped) + len(val_skipped)} utterance(s) without a usable alignment are "
                          f"left out, e.g. {(skipped + val_skipped)[:2]}")
        self.frames = sum(len(y) for _, y in items)
        return FrameBatches(items, cfg.batch_size, cfg.crop_frames, cfg.seed), val_items

    def train(self) -> Path:
        """Run to `steps`; returns the folder of the published weights (RUN_DIR/model)."""
        state = self._check_run_folder()
        cfg = self.config
        batches, self.val_items = self._prepare_data()
        width = batches.items[0][0].shape[1]
        torch.manual_seed(cfg.seed)  # the head's initial weights and its dropout
        head = WhisperPhoneHead.from_preset(cfg.preset, whisper=cfg.whisper, feature_dim=width,
                                            tail_seconds=cfg.tail_seconds, lm_weight=cfg.lm_weight).train()
        head.count_transitions(labels for _, labels in batches.items)  # the decoding's phone bigram
        optimizer = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_factor(s, cfg.warmup_steps))
        start = 0
        if state is not None:
            start = restore_training_state(state, head, optimizer, scheduler)
        log = RunLog(self.out, start)
        bar = tqdm(total=self.steps, initial=start, desc="train phone head", unit="step", disable=not self.progress)
        tick, tick_step = time.perf_counter(), start
        for step in range(start, self.steps):
            loss, info = head.loss(batches.batch(step))
            if not torch.isfinite(loss):
                raise FloatingPointError(f"the loss became {loss.item()} at step {step + 1}; lower --lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(head.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            done = step + 1
            if done % cfg.log_every == 0 or done == self.steps:
                now = time.perf_counter()
                values = {**info, "lr": scheduler.get_last_lr()[0],
                          "steps_per_s": (done - tick_step) / max(now - tick, 1e-9)}
                tick, tick_step = now, done
                if self.val_items and (done % cfg.validate_every == 0 or done == self.steps):
                    values["val_accuracy"] = frame_accuracy(head, self.val_items)
                    values["val_phone_error"] = phone_error_rate(head, self.val_items)
                log.write(done, values)
                bar.set_postfix(ce=f"{info['ce']:.3f}", acc=f"{info['accuracy']:.3f}")
            bar.update(1)
            if done % cfg.checkpoint_every == 0 or done == self.steps:
                self.checkpoint(head, optimizer, scheduler, done, log)
        bar.close()
        log.close()
        if self.push_repo and start < self.steps:
            push_to_hub(self.out / "model", self.push_repo,
                        commit_message=f"voicelab whisper-phones training: {self.steps} steps")
        return self.out / "model"

    def checkpoint(self, head, optimizer, scheduler, step: int, log: RunLog) -> None:
        save_resume_state(self.out, {"step": step, "model": head.state_dict(), "optimizer": optimizer.state_dict(),
                                     "scheduler": scheduler.state_dict(), "rng": rng_state(), "run": self._identity()})
        head.eval()
        head.save_pretrained(self.out / "model", card=self.card_fields(step, log), dtype=torch.float16)
        head.train()
        plot_losses(log, self.out / "loss.png", ("ce", "train cross-entropy"), ("accuracy", "train frame accuracy"),
                    ("val_accuracy", "held-out speakers' frame accuracy"))

    def card_fields(self, step: int, log: RunLog) -> dict[str, Any]:
        cfg = self.config
        steps, accuracy = log.series("val_accuracy")
        training = {"steps": step, "data": ", ".join(self.data), "training speakers": self.speakers,
                    "training frames (50 per s)": self.frames, "whisper": cfg.whisper,
                    "tail_seconds": cfg.tail_seconds, "batch": f"{cfg.batch_size} x {cfg.crop_frames} frames",
                    "lr": cfg.lr, "schedule": f"{cfg.warmup_steps} warm-up steps, then constant"}
        metrics = None
        if accuracy:
            _, errors = log.series("val_phone_error")
            training[f"held-out speakers' frame accuracy at step {steps[-1]}"] = round(accuracy[-1], 4)
            training[f"held-out speakers' phone error rate at step {steps[-1]}"] = round(errors[-1], 4)
            metrics = [{"dataset": {"type": "voicelab-val", "name": "speakers split off the training data"},
                        "task": {"type": "phone-recognition", "name": "frame phone recognition"},
                        "metrics": [{"type": "accuracy", "value": round(accuracy[-1], 4),
                                     "name": "frame accuracy against the phone alignments"},
                                    {"type": "per", "value": round(errors[-1], 4),
                                     "name": "phone error rate of the decoded sequences (bigram weight "
                                             f"{cfg.lm_weight:g})"}]}]
        description = (f"A phone classifier over Whisper-{cfg.whisper}'s encoder output (frozen), trained with "
                       f"`python -m training whisper-phones` for {step} steps on {', '.join(self.data)}. "
                       "It gives the phonetic converter its phones in one encoder pass, with no transcript "
                       "to decode or align (`vc.encoder_phones.EncoderPhones`), decoded under a phone "
                       "bigram counted on the training labels; or, reading the encoder output of a "
                       "transcription, leaning toward the aligned transcript (`vc.encoder_phones.HybridPhones`).")
        return {"description": description, "training": training, "metrics": metrics, "repo_id": self.push_repo,
                "datasets": self.datasets or None, "license": "cc-by-4.0" if self.datasets else "mit"}


__all__ = ["FrameBatches", "WhisperPhonesConfig", "WhisperPhonesTrainer", "encoder_features", "frame_accuracy",
           "phone_error_rate"]

"""One training loop for every conversion-model family, on `accelerate`.

    Trainer(run_config, data=["corpus/"], out="runs/x", steps=2000).train()

CPU, one GPU, mixed precision and `accelerate launch` across GPUs or nodes all run this same
loop. Every `checkpoint_every` steps it writes the resume state (model, EMA, optimizer,
scheduler, step, RNG) atomically and the publishable EMA weights to RUN_DIR/model/.
"""
from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path
from typing import Any, Sequence

import torch
from accelerate import Accelerator
from torch import nn
from tqdm.auto import tqdm

from vc.audio import Audio
from vc.data import read_corpora, read_corpus, split_by_speaker
from vc.errors import CheckpointError
from vc.hub import model_class, push_to_hub
from vc.models import ConversionModel
from vc.vocoders import GriffinLim

from .checkpoint import (
    load_resume_state, remove_interrupted_writes, rng_state, save_resume_state, set_rng_state,
)
from .config import RunConfig, TrainConfig
from .features import SegmentBatches, UtteranceFeatures, compute_features
from .logs import RunLog, plot_losses, plot_mels

VALIDATION_BATCHES = 4
# Training settings a model card lists.
CARD_SETTINGS = ("batch_size", "segment_frames", "lr", "schedule", "adversarial_start",
                 "discriminator_width", "discriminators")
DATASET_IDS = {"librispeech": "openslr/librispeech_asr", "vctk": "CSTR-Edinburgh/vctk",
               "libritts": "mythicinfinity/libritts", "ljspeech": "keithito/lj_speech"}


class _LossOf(nn.Module):
    """Routes forward() to model.loss() so accelerate/DDP wrap the call that makes gradients."""

    def __init__(self, model: ConversionModel):
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor]):
        return self.model.loss(batch)


def lr_factor(step: int, config: TrainConfig, total_steps: int) -> float:
    """Learning-rate multiplier at `step` (0-based) for the configured schedule."""
    warm = max(1, config.warmup_steps)
    if step < config.warmup_steps:
        return (step + 1) / warm
    if config.schedule == "noam":
        return math.sqrt(warm / (step + 1))
    if config.schedule == "cosine":
        progress = (step - config.warmup_steps) / max(1, total_steps - config.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return 1.0


@torch.no_grad()
def update_ema(ema: nn.Module, live: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * live for parameters; buffers (BatchNorm statistics,
    EMA codebooks) are copied, as they are averages already."""
    for e, p in zip(ema.parameters(), live.parameters()):
        e.lerp_(p.detach(), 1 - decay)
    for e, b in zip(ema.buffers(), live.buffers()):
        e.copy_(b)


def load_utterances(data: Sequence[str]):
    return read_corpus(data[0]) if len(data) == 1 else read_corpora(list(data))


class Trainer:
    """Trains one model on one or more corpora; see `python -m training --help`.

    Args:
        run: model settings and training settings.
        data: corpus folders or manifests (anything `vc.data.read_corpus` reads).
        out: the run folder.
        steps: train until this step.
        resume: continue the run in `out` (required if it holds one).
        cache_dir: where features are cached (default: RUN_DIR/../.feature-cache).
        push_to_hub, push_every: publish the final (and every N steps') weights.
        mixed_precision: "no", "fp16" or "bf16" (accelerate's settings).
    """

    def __init__(self, run: RunConfig, data: Sequence[str], out: str | Path, steps: int, *,
                 resume: bool = False, cache_dir: str | Path | None = None,
                 push_to_hub: str | None = None, push_every: int = 0, hub_token: str | None = None,
                 mixed_precision: str = "no", progress: bool = True):
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a whole number of at least 1, got {steps!r}")
        self.run, self.data, self.steps = run, list(data), steps
        self.out = Path(out)
        self.resume, self.progress = resume, progress
        self.cache_dir = Path(cache_dir) if cache_dir else self.out.parent / ".feature-cache"
        self.push_repo, self.push_every, self.hub_token = push_to_hub, push_every, hub_token
        self.accelerator = Accelerator(mixed_precision=mixed_precision)
        self.config = run.train

    # ------------------------------------------------------------------ setup
    #: run_config.json entries a resumed run must share with the run it continues.
    IDENTITY_KEYS: tuple[str, ...] = ("family", "model")

    def _identity(self) -> dict[str, Any]:
        """What run_config.json records about the run."""
        return {**self.run.to_dict(), "data": self.data}

    def _check_run_folder(self) -> dict[str, Any] | None:
        self.out.mkdir(parents=True, exist_ok=True)
        if self.accelerator.is_main_process:
            remove_interrupted_writes(self.out)
        state = load_resume_state(self.out)
        saved = self.out / "run_config.json"
        now = self._identity()
        if state is not None and not self.resume:
            raise CheckpointError(
                f"'{self.out}' already holds a run at step {state['step']}; pass --resume to "
                "continue it, or choose another --out")
        if state is not None and saved.exists():
            before = json.loads(saved.read_text())
            changed = [k for k in self.IDENTITY_KEYS if before.get(k) != now.get(k)]
            if changed:
                names = ", ".join({"mels_from": "--mels-from", "match_phones": "--match-phones"}.get(k, k)
                                 for k in changed)
                raise CheckpointError(
                    f"'{self.out}' was trained with other settings ({names}; see {saved}); "
                    "resume with the same ones, or choose another --out")
        if self.accelerator.is_main_process:
            saved.write_text(json.dumps(now, indent=2) + "\n")
        return state

    def _push(self, done: int) -> None:
        """Publish RUN_DIR/model at the end, and every `push_every` steps if asked."""
        if not self.push_repo or not self.accelerator.is_main_process:
            return
        if done == self.steps:
            push_to_hub(self.out / "model", self.push_repo, token=self.hub_token,
                        commit_message=f"voicelab training: {self.steps} steps")
        elif self.push_every and done % self.push_every == 0:
            push_to_hub(self.out / "model", self.push_repo, token=self.hub_token,
                        commit_message=f"step {done}")

    def _build_model(self, n_speakers: int) -> ConversionModel:
        cls = model_class(self.run.family)
        settings = dict(self.run.model)
        if settings.get("speaker_conditioning") == "table":
            settings["n_speakers"] = n_speakers  # the table has a row per speaker of the data
        torch.manual_seed(self.config.seed)
        return cls(**settings)

    @staticmethod
    def _initialise_from(model: ConversionModel, name: str) -> None:
        """Start from the weights of a published model (strictly: same type, same shapes)."""
        from vc.hub import load_model
        from vc.pipeline import resolve_run_folder

        start = load_model(resolve_run_folder(name))
        if type(start) is not type(model):
            raise CheckpointError(f"init_from {name!r} is a {type(start).__name__}; this run trains a "
                                  f"{type(model).__name__}")
        model.load_weights({k: v.float() for k, v in start.state_dict().items()}, source=f"init_from {name!r}")

    def _prepare_data(self, mel_config, frame_targets: Sequence[str] = ()
                      ) -> tuple[list[UtteranceFeatures], list[UtteranceFeatures], list[str]]:
        utterances = load_utterances(self.data)
        self.corpora = sorted({u.corpus for u in utterances})
        train_utts, val_utts = split_by_speaker(utterances, self.config.val_fraction, self.config.seed)
        features, speakers = compute_features(train_utts + val_utts, mel_config, self.cache_dir,
                                              progress=self.progress and self.accelerator.is_main_process,
                                              frame_targets=frame_targets)
        val_ids = {u.path for u in val_utts}
        train = [f for f in features if f.utterance.path not in val_ids]
        val = [f for f in features if f.utterance.path in val_ids]
        return train, val, speakers

    # ------------------------------------------------------------------ train
    def train(self) -> Path:
        """Run to `steps`; returns the folder of the published weights (RUN_DIR/model)."""
        state = self._check_run_folder()
        probe = self._build_model(n_speakers=1)
        self.mel_config = probe.mel
        train, val, speakers = self._prepare_data(probe.mel, probe.frame_targets)
        self.speakers = speakers
        model = self._build_model(n_speakers=len(speakers))
        cfg = self.config
        if state is None and cfg.init_from:
            self._initialise_from(model, cfg.init_from)
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: lr_factor(step, cfg, self.steps))
        ema = copy.deepcopy(model).eval().requires_grad_(False)
        start = 0
        if state is not None:
            model.load_weights(state["model"], source="resume state (model)")
            ema.load_weights(state["ema"], source="resume state (EMA)")
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            set_rng_state(state["rng"])
            start = int(state["step"])
        acc = self.accelerator
        wrapped, optimizer, scheduler = acc.prepare(_LossOf(model), optimizer, scheduler)
        ema.to(acc.device)
        silence = math.log(probe.mel.log_floor) if probe.mel.compression == "log" else 0.0
        batches, val_batches = self.make_batches(train, val, silence)
        log = RunLog(self.out, start) if acc.is_main_process else None
        self.sample_pair = self._sample_pair(train, val)
        bar = tqdm(total=self.steps, initial=start, desc=f"train {self.run.family}", unit="step",
                   disable=not (self.progress and acc.is_main_process))
        wrapped.train()
        tick, tick_step = time.perf_counter(), start
        for step in range(start, self.steps):
            batch = {k: v.to(acc.device) for k, v in batches.batch(step).items()}
            loss, parts = wrapped(batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"the loss became {loss.item()} at step {step + 1}; lower the learning rate "
                    f"(now {scheduler.get_last_lr()[0]:.2e}) or resume from the last checkpoint")
            acc.backward(loss)
            if cfg.grad_clip > 0:
                acc.clip_grad_norm_(wrapped.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            live = acc.unwrap_model(wrapped).model
            update_ema(ema, live, min(cfg.ema_decay, (1 + step) / (10 + step)))
            done = step + 1
            if log is not None and (done % cfg.log_every == 0 or done == self.steps):
                now = time.perf_counter()
                rate = (done - tick_step) / max(now - tick, 1e-9)
                tick, tick_step = now, done
                values = {"loss": loss.item(), **{k: float(v) for k, v in parts.items()},
                          "lr": scheduler.get_last_lr()[0], "steps_per_s": rate}
                if val_batches is not None and (done % cfg.validate_every == 0 or done == self.steps):
                    values.update(self.validate(live, val_batches))
                log.write(done, values)
                bar.set_postfix(loss=f"{values['loss']:.4f}", steps_s=f"{rate:.2f}")
            bar.update(1)
            if acc.is_main_process and (done % cfg.sample_every == 0 or done == self.steps):
                self.write_sample(ema, done)
            if done % cfg.checkpoint_every == 0 or done == self.steps:
                self.checkpoint(live, ema, optimizer, scheduler, done, log)
                self._push(done)
        bar.close()
        if log is not None:
            log.close()
        return self.out / "model"

    def make_batches(self, train: Sequence[UtteranceFeatures], val: Sequence[UtteranceFeatures],
                     silence: float):
        """Training and validation batch makers (anything with `batch(step)`); families that
        learn from whole utterances rather than mel segments override this."""
        cfg = self.config
        batches = SegmentBatches(train, cfg.segment_frames, cfg.batch_size, cfg.seed, silence,
                                 rank=self.accelerator.process_index)
        val_batches = (SegmentBatches(val, cfg.segment_frames, cfg.batch_size, cfg.seed + 1, silence)
                       if val else None)
        return batches, val_batches

    # ------------------------------------------------------------- periodic work
    @torch.no_grad()
    def validate(self, model: ConversionModel, val_batches) -> dict[str, float]:
        """Mean loss parts of the live model on fixed batches of held-out speakers."""
        was_training = model.training
        model.eval()
        totals: dict[str, float] = {}
        for i in range(VALIDATION_BATCHES):
            batch = {k: v.to(self.accelerator.device) for k, v in val_batches.batch(i).items()}
            loss, parts = model.loss(batch)
            for key, value in {"loss": loss.item(), **{k: float(v) for k, v in parts.items()}}.items():
                totals[f"val_{key}"] = totals.get(f"val_{key}", 0.0) + value / VALIDATION_BATCHES
        model.train(was_training)
        return totals

    def _sample_pair(self, train, val) -> tuple[UtteranceFeatures, UtteranceFeatures]:
        """A fixed (source, target) pair of different speakers, held out where possible."""
        pool = val if len({f.speaker_index for f in val}) >= 2 else val + train
        source = pool[0]
        target = next((f for f in pool if f.speaker_index != source.speaker_index), pool[-1])
        return source, target

    @torch.no_grad()
    def write_sample(self, ema: ConversionModel, step: int) -> None:
        """Convert the fixed pair with the EMA weights: a wav and a PNG of the three mels."""
        source, target = self.sample_pair
        device = self.accelerator.device
        src_mel, tgt_mel = source.mel.to(device), target.mel.to(device)
        src = ema.speaker([src_mel], source.embedding.to(device))
        tgt = ema.speaker([tgt_mel], target.embedding.to(device))
        converted = ema.convert(src_mel[None], src[None], tgt[None])[0].float().cpu()
        wav = GriffinLim(ema.mel, n_iter=32)(converted)
        self._save_sample(step, Audio(wav.numpy(), ema.mel.sample_rate),
                          {f"source ({source.utterance.speaker})": source.mel,
                           f"target reference ({target.utterance.speaker})": target.mel,
                           f"converted, step {step}": converted}, ema.mel.frame_rate)

    def _save_sample(self, step: int, audio: Audio, mels: dict[str, torch.Tensor], frame_rate: float) -> None:
        """RUN_DIR/samples/stepNNNNNNN.wav and .png (the mels one above the other)."""
        folder = self.out / "samples"
        folder.mkdir(exist_ok=True)
        audio.save(folder / f"step{step:07d}.wav")
        plot_mels(mels, folder / f"step{step:07d}.png", frame_rate)

    def checkpoint(self, live, ema, optimizer, scheduler, step: int, log: RunLog | None) -> None:
        acc = self.accelerator
        acc.wait_for_everyone()
        if not acc.is_main_process:
            return
        state = {"step": step, "model": live.state_dict(), "ema": ema.state_dict(),
                 "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
        self._write_checkpoint(state, ema if self.config.ema_decay > 0 else live, step, log)

    def _write_checkpoint(self, state: dict[str, Any], published, step: int, log: RunLog | None,
                          curves: Sequence[tuple[str, str]] = ()) -> None:
        """The resume state (plus RNG and run settings), the published weights with their card,
        and the loss plot. Main process only."""
        save_resume_state(self.out, {**state, "rng": rng_state(), "run": self.run.to_dict()})
        published.save_pretrained(self.out / "model", card=self.card_fields(step, log))
        if log is not None:
            plot_losses(log, self.out / "loss.png", *curves)

    def card_fields(self, step: int, log: RunLog | None, description: str | None = None,
                    columns: Sequence[str] = ("recon", "val_recon"),
                    **extra_training: Any) -> dict[str, Any]:
        """Model-card fields: datasets and licence from the corpora, the training settings,
        and the last value of each logged `columns`."""
        kinds = sorted({name.split("-")[0] for name in self.corpora})
        real = [k for k in kinds if k in DATASET_IDS]
        train = self.run.to_dict()["train"]
        training: dict[str, Any] = {"steps": step, "data": ", ".join(self.data),
                                    "speakers": len(self.speakers), "preset": self.run.preset,
                                    **extra_training,
                                    **{k: v for k, v in train.items() if k in CARD_SETTINGS}}
        if log is not None:
            for column in columns:
                steps, values = log.series(column)
                if values:
                    training[f"final {column}"] = round(values[-1], 5)
        return {"description": description or _summary(self.run.family),
                "datasets": [DATASET_IDS[k] for k in real],
                "license": "cc-by-4.0" if real else "mit", "training": training,
                "repo_id": self.push_repo}


def _summary(family: str) -> str:
    doc = model_class(family).__doc__ or family
    return doc.strip().split("\n\n")[0]

"""The vocoder training loop: a generator against HiFi-GAN's discriminators, on `accelerate`.

    VocoderTrainer(run_config, data=["corpus/"], out="runs/hifigan", steps=20000).train()

Each step updates the discriminators on real and generated audio, then the generator on the
multi-resolution mel loss plus adversarial and feature-matching losses (mel loss alone before
`adversarial_start`). The resume state (generator, discriminators, both optimizers,
step, RNG) is written atomically apart from the publishable generator-only weights
in RUN_DIR/model/, so the published folder stays a few MB while a run can always continue.
"""
from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from vc.audio import Audio
from vc.data import split_by_speaker
from vc.hub import model_class
from vc.mel import MelSpectrogram
from vc.phone_matching import PhoneMeanMatching

from .checkpoint import set_rng_state
from .config import RunConfig
from .features import compute_features
from .gan import (
    Discriminators, MultiResolutionMelLoss, MultiResolutionSTFTLoss, SpectrumLoss, discriminator_loss,
    feature_matching_loss, generator_adversarial_loss,
)
from .logs import RunLog
from .loop import Trainer, load_utterances, lr_factor, update_ema
from .vocoder_data import (
    VocoderBatches, VocoderItem, load_f0_labels, load_mel_model, load_waveforms,
    mel_model_targets, reconstructed_mels,
)

VALIDATION_ITEMS = 8
SAMPLE_SECONDS = 4.0


GROUND_TRUTH = "truth"  # in `mels_from`: the true mels, pooled with the models' ones


def _fill_unvoiced(f0: torch.Tensor) -> torch.Tensor:
    """F0 labels (B, T) with each unvoiced run (0) given the nearest voiced value before it (the
    first voiced value at the start; 100 Hz where a segment has none): a harmonic vocoder's
    oscillators need a pitch everywhere and learn silence from the envelope."""
    out = f0.clone()
    for row in out:
        voiced = torch.nonzero(row > 0).flatten()
        if len(voiced) == 0:
            row.fill_(100.0)
            continue
        row[:voiced[0]] = row[voiced[0]]
        index = torch.cummax(torch.where(row > 0, torch.arange(len(row), device=row.device),
                                         torch.zeros_like(row, dtype=torch.long)), dim=0).values
        row.copy_(row[index])
    return out


class VocoderTrainer(Trainer):
    """Trains a vocoder; arguments as `training.loop.Trainer`, plus:

    Args:
        mels_from: conversion model or synthesizer runs, folders or repos whose reconstructions
            of the training utterances replace the ground-truth input mels (one name, or
            several whose (mel, waveform) pairs are pooled; "truth" adds the true mels).
        match_phones: move each reconstruction phone by phone to its utterance's own spectrum
            (`vc.phone_matching.PhoneMeanMatching`), as the demo's default chains match their
            output to the reference: the vocoder learns the mels it will be given.
    """

    IDENTITY_KEYS = ("family", "model", "mels_from", "match_phones")

    def __init__(self, run: RunConfig, data: Sequence[str], out: str | Path, steps: int, *,
                 mels_from: str | Sequence[str] | None = None, match_phones: bool = False,
                 **options: Any):
        super().__init__(run, data, out, steps, **options)
        if isinstance(mels_from, (list, tuple)):
            mels_from = list(mels_from) if len(mels_from) > 1 else (mels_from[0] if mels_from else None)
        self.mels_from = mels_from
        self.match_phones = bool(match_phones)
        if self.match_phones and not self.mels_from:
            raise ValueError("--match-phones matches a model's reconstructions; give --mels-from")

    @property
    def mel_sources(self) -> list[str]:
        if not self.mels_from:
            return []
        return [self.mels_from] if isinstance(self.mels_from, str) else list(self.mels_from)

    def _identity(self) -> dict[str, Any]:
        identity = {**super()._identity(), "mels_from": self.mels_from}
        if self.match_phones:  # absent when off, so earlier runs resume as they were
            identity["match_phones"] = True
        return identity

    def _prepare_data(self, generator) -> VocoderBatches:
        cfg, mel = self.config, generator.mel
        show = self.progress and self.accelerator.is_main_process
        utterances = load_utterances(self.data)
        self.corpora = sorted({u.corpus for u in utterances})
        train_utts, val_utts = split_by_speaker(utterances, cfg.val_fraction, cfg.seed)
        models = {name: load_mel_model(name, mel) for name in self.mel_sources if name != GROUND_TRUTH}
        targets = mel_model_targets(list(models.values()))
        features, self.speakers = compute_features(train_utts + val_utts, mel, self.cache_dir,
                                                   progress=show, frame_targets=targets)
        waves = load_waveforms(features, mel, self.cache_dir, progress=show, trim=not targets)
        f0s = [None] * len(features)
        if getattr(generator, "needs_f0", False):  # a harmonic vocoder learns F0 from labels
            f0s = load_f0_labels(features, waves, mel, self.cache_dir, progress=show, trim=not targets)
        matching = PhoneMeanMatching() if self.match_phones else None
        val_ids = {u.path for u in val_utts}
        train: list[VocoderItem] = []
        val: list[VocoderItem] = []
        for name in self.mel_sources or [GROUND_TRUTH]:  # each source adds its (mel, waveform) pairs
            mels = ([f.mel for f in features] if name == GROUND_TRUTH
                    else reconstructed_mels(models[name], features, matching, show))
            for f, wav, m, f0 in zip(features, waves, mels, f0s):
                if m is not None:  # None: an utterance that model cannot say
                    (val if f.utterance.path in val_ids else train).append(
                        VocoderItem(f.utterance.path.name, m, wav, f0))
        if not train:
            raise ValueError("no training utterance has a mel to learn from; the synthesizer needs "
                             "aligned speech (`python -m vc.data align`)")
        silence = math.log(mel.log_floor) if mel.compression == "log" else 0.0
        hop, rank = mel.hop_length, self.accelerator.process_index
        self.sample_item = (val or train)[0]
        self.val_items = val[::max(1, len(val) // VALIDATION_ITEMS)][:VALIDATION_ITEMS]
        return VocoderBatches(train, cfg.segment_frames, cfg.batch_size, hop, cfg.seed, silence, rank)

    def train(self) -> Path:
        """Run to `steps`; returns the folder of the published generator (RUN_DIR/model)."""
        cfg, acc = self.config, self.accelerator
        state = self._check_run_folder()
        torch.manual_seed(cfg.seed)
        generator = model_class(self.run.family)(**self.run.model)
        if state is None and cfg.init_from:
            self._initialise_from(generator, cfg.init_from)
        discriminators = Discriminators(width=cfg.discriminator_width, kind=cfg.discriminators)
        batches = self._prepare_data(generator)
        betas = (cfg.adam_beta1, cfg.adam_beta2)
        opt_g = torch.optim.AdamW(generator.parameters(), cfg.lr, betas, weight_decay=cfg.weight_decay)
        opt_d = torch.optim.AdamW(discriminators.parameters(), cfg.lr, betas, weight_decay=cfg.weight_decay)
        ema = copy.deepcopy(generator).eval().requires_grad_(False) if cfg.ema_decay > 0 else None
        start = 0
        if state is not None:
            generator.load_weights(state["generator"], source="resume state (generator)")
            discriminators.load_state_dict(state["discriminators"], strict=True)
            if ema is not None:
                ema.load_weights(state["ema"], source="resume state (EMA)")
            opt_g.load_state_dict(state["opt_g"])
            opt_d.load_state_dict(state["opt_d"])
            set_rng_state(state["rng"])
            start = int(state["step"])
        mel_loss_fn = MultiResolutionMelLoss(generator.mel).to(acc.device)
        stft_loss_fn = MultiResolutionSTFTLoss().to(acc.device) if cfg.stft_loss_weight else None
        predicts_f0 = getattr(generator, "needs_f0", False)
        spectrum_loss = None
        if getattr(generator, "head", None) == "istft" and (cfg.magnitude_loss_weight or cfg.phase_loss_weight):
            spectrum_loss = SpectrumLoss(generator.istft_n_fft, generator.istft_hop).to(acc.device)
        generator, discriminators, opt_g, opt_d = acc.prepare(generator, discriminators, opt_g, opt_d)
        if ema is not None:
            ema.to(acc.device)
        log = RunLog(self.out, start) if acc.is_main_process else None
        bar = tqdm(total=self.steps, initial=start, desc=f"train {self.run.family}", unit="step",
                   disable=not (self.progress and acc.is_main_process))
        generator.train()
        discriminators.train()
        tick, tick_step = time.perf_counter(), start
        for step in range(start, self.steps):
            # The learning rate is a function of the step alone, so a resumed run needs no
            # scheduler state (and the discriminators' idle warm-up steps need no special case).
            lr = cfg.lr * lr_factor(step, cfg, self.steps)
            for group in opt_g.param_groups + opt_d.param_groups:
                group["lr"] = lr
            batch = batches.batch(step)
            mel, wav = batch["mel"].to(acc.device), batch["wav"].to(acc.device)
            direct = spectrum_loss is not None
            parts: dict[str, float] = {}
            f0_loss = None
            if direct:  # the inverse-STFT head's magnitude and phase, supervised directly
                fake, log_magnitude, phase = generator(mel, return_spectrum=True)
            elif predicts_f0:  # the labels drive the oscillators; the F0 head learns them
                f0 = batch["f0"].to(acc.device)
                noise = torch.Generator(device=acc.device).manual_seed(cfg.seed * 1_000_003 + step)
                fake, controls = generator(mel, f0=_fill_unvoiced(f0), return_controls=True, noise=noise)
                f0_loss = acc.unwrap_model(generator).f0_loss(controls["f0"], f0)
                parts["f0_semitones"] = f0_loss.item()
            else:
                fake = generator(mel)
            adversarial = step >= cfg.adversarial_start
            if adversarial:
                d_loss = discriminator_loss(discriminators(wav), discriminators(fake.detach()))
                # The previous generator step left gradients in the discriminators; drop them.
                opt_d.zero_grad(set_to_none=True)
                acc.backward(d_loss)
                self._clip(discriminators)
                opt_d.step()
                parts["d_loss"] = d_loss.item()
            mel_loss = mel_loss_fn(fake, wav)
            loss = cfg.mel_loss_weight * mel_loss
            if stft_loss_fn is not None:
                stft_loss = stft_loss_fn(fake, wav)
                loss = loss + cfg.stft_loss_weight * stft_loss
                parts["stft"] = stft_loss.item()
            if f0_loss is not None:
                loss = loss + cfg.f0_loss_weight * f0_loss
            if direct:
                magnitude_loss, phase_loss = spectrum_loss(log_magnitude, phase, wav)
                loss = loss + cfg.magnitude_loss_weight * magnitude_loss + cfg.phase_loss_weight * phase_loss
                parts.update(magnitude=magnitude_loss.item(), phase=phase_loss.item())
            if adversarial:
                with torch.no_grad():
                    real_out = discriminators(wav)
                fake_out = discriminators(fake)
                adv, fm = generator_adversarial_loss(fake_out), feature_matching_loss(real_out, fake_out)
                loss = loss + adv + fm
                parts.update(adv=adv.item(), fm=fm.item())
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"the loss became {loss.item()} at step {step + 1}; lower the learning rate "
                    f"(now {lr:.2e}) or resume from the last checkpoint")
            acc.backward(loss)
            self._clip(generator)
            opt_g.step()
            opt_g.zero_grad(set_to_none=True)
            live = acc.unwrap_model(generator)
            if ema is not None:
                update_ema(ema, live, min(cfg.ema_decay, (1 + step) / (10 + step)))
            done = step + 1
            if log is not None and (done % cfg.log_every == 0 or done == self.steps):
                now = time.perf_counter()
                rate = (done - tick_step) / max(now - tick, 1e-9)
                tick, tick_step = now, done
                values = {"loss": loss.item(), "mel": mel_loss.item(), **parts,
                          "lr": lr, "steps_per_s": rate}
                if self.val_items and (done % cfg.validate_every == 0 or done == self.steps):
                    values.update(self.validate(live, self.val_items))
                log.write(done, values)
                bar.set_postfix(mel=f"{values['mel']:.3f}", steps_s=f"{rate:.2f}")
            bar.update(1)
            published = ema if ema is not None else live
            if acc.is_main_process and (done % cfg.sample_every == 0 or done == self.steps):
                self.write_sample(published, done)
            if done % cfg.checkpoint_every == 0 or done == self.steps:
                self.checkpoint(live, ema, acc.unwrap_model(discriminators), (opt_g, opt_d),
                                done, log)
                self._push(done)
        bar.close()
        if log is not None:
            log.close()
        return self.out / "model"

    def _clip(self, module) -> None:
        if self.config.grad_clip > 0:
            self.accelerator.clip_grad_norm_(module.parameters(), self.config.grad_clip)

    @torch.no_grad()
    def validate(self, generator, items: Sequence[VocoderItem]) -> dict[str, float]:
        """Log-mel L1 (the vocoder's own mel settings) between held-out utterances and their
        resynthesis. Whole utterances, cut to a few seconds: no padded digital silence, whose
        log floor would swamp the figure."""
        was_training = generator.training
        generator.eval()
        device = self.accelerator.device
        mel_fn = MelSpectrogram(generator.mel).to(device)
        hop, frames = generator.mel.hop_length, int(SAMPLE_SECONDS * generator.mel.frame_rate)
        total = 0.0
        for item in items:
            n = min(frames, item.mel.shape[-1], item.wav.shape[-1] // hop)
            fake = generator(item.mel[None, :, :n].to(device))
            real = item.wav[None, :n * hop].to(device)
            total += F.l1_loss(mel_fn(fake), mel_fn(real)).item() / len(items)
        generator.train(was_training)
        return {"val_mel_l1": total}

    @torch.no_grad()
    def write_sample(self, generator, step: int) -> None:
        """A held-out utterance (its first seconds) resynthesised: a wav and a PNG of the mels."""
        item = self.sample_item
        frames = int(SAMPLE_SECONDS * generator.mel.frame_rate)
        mel = item.mel[:, :frames].to(self.accelerator.device)
        was_training = generator.training
        generator.eval()
        wav = generator(mel[None])[0].float().cpu()
        generator.train(was_training)
        again = MelSpectrogram(generator.mel)(wav)
        self._save_sample(step, Audio(wav.numpy(), generator.mel.sample_rate),
                          {f"input mel ({item.name})": mel.cpu(), f"mel of the vocoder's output, step {step}": again},
                          generator.mel.frame_rate)

    def checkpoint(self, live, ema, discriminators, optimizers, step: int, log: RunLog | None) -> None:
        acc = self.accelerator
        acc.wait_for_everyone()
        if not acc.is_main_process:
            return
        opt_g, opt_d = optimizers
        state = {"step": step, "generator": live.state_dict(),
                 "discriminators": discriminators.state_dict(), "opt_g": opt_g.state_dict(),
                 "opt_d": opt_d.state_dict()}
        if ema is not None:
            state["ema"] = ema.state_dict()
        self._write_checkpoint(state, ema if ema is not None else live, step, log,
                               (("mel", "train mel loss"), ("val_mel_l1", "validation mel L1")))

    def card_fields(self, step: int, log: RunLog | None, **_: Any) -> dict[str, Any]:
        cfg = self.config
        source = "ground truth"
        if self.mels_from:
            names = [n if n != GROUND_TRUTH else "the ground truth" for n in self.mel_sources]
            source = "reconstructed by " + " and ".join(names)
            if self.match_phones:
                source += ", matched phone by phone to each utterance"
        if cfg.init_from:
            source += f"; fine-tuned from {cfg.init_from}"
        losses = "the multi-resolution log-mel loss"
        if cfg.stft_loss_weight:
            losses = "the multi-resolution log-mel and STFT losses"
        if step > cfg.adversarial_start:
            losses += f", and from step {cfg.adversarial_start} multi-period and multi-scale discriminators"
        else:
            losses += " only (no discriminators)" if self.run.family == "ddsp" else " only (no adversarial steps yet)"
        if self.run.family == "ddsp":
            description = (f"Harmonic-plus-noise vocoder (DDSP, Engel et al., 2020), "
                           f"{self.run.preset or 'custom'} settings: log-mel frames ({source}) to "
                           "F0 and harmonic and noise envelopes, then sinusoids and shaped noise. "
                           f"Trained on {losses}, with F0 supervised by pYIN labels.")
        else:
            head = ("an inverse-STFT head (magnitude and phase per bin, as in Vocos/iSTFTNet)"
                    if self.run.model.get("head") == "istft" else "transposed-convolution up-sampling")
            description = (f"HiFi-GAN vocoder (Kong et al., 2020), {self.run.preset or 'custom'} settings, "
                           f"with {head}: log-mel frames ({source}) to waveform. Trained on {losses}.")
        fields = super().card_fields(step, log, description, ("val_mel_l1",), **{"input mels": source})
        if step <= cfg.adversarial_start:  # no discriminator took part: their settings say nothing
            for name in ("adversarial_start", "discriminator_width", "discriminators"):
                fields["training"].pop(name, None)
        return fields

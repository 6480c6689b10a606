"""Training the text-to-mel synthesizer through the shared loop (`training.loop.Trainer`).

    SynthesizerTrainer(run_config, data=["corpus.jsonl"], out="runs/synth", steps=20000).train()

Everything but the batches and the samples is the conversion families' loop: accelerate, EMA,
atomic checkpoints, exact resume, validation on held-out speakers, Hub publishing. A batch is a
set of utterances with their phone tokens and frame counts, read from the alignments the corpus
carries (the synthetic corpus's exact ones, pocketsphinx's forced ones for real speech); long
utterances are cut at a random phone boundary to `segment_frames`, so a step costs the same
whatever the corpus. Utterances without an alignment are left out, with a count.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import torch

from vc.audio import Audio
from vc.data.phones import PhoneSetError
from vc.models.synthesizer import PAD, alignment_tokens, phone_pitch
from vc.vocoders import GriffinLim

from .features import UtteranceFeatures
from .loop import Trainer


class TokenBatches:
    """Utterances (or phone-aligned spans of them) with tokens, frame counts, phone pitch and
    mel, reproducible from (seed, step) as `SegmentBatches` is.

    Args:
        features: utterances with "phones" and "f0" frame targets and an alignment.
        max_frames: the longest span a batch item may have.
        batch_size: items per batch.
        seed: `batch(step)` depends only on it, the step and `rank`.
        silence: the log-mel value that pads.
        frame_rate: mel frames per second (to turn alignment times into frames).
        embedding_noise: Gaussian noise on each item's speaker embedding (`SynthesizerTrainConfig`).
    """

    def __init__(self, features: Sequence[UtteranceFeatures], frame_rate: float, max_frames: int,
                 batch_size: int, seed: int, silence: float, rank: int = 0, embedding_noise: float = 0.0):
        self.items = []
        for f in features:
            if not f.utterance.alignment:
                continue
            frames = f.mel.shape[-1]
            try:
                tokens, lengths = alignment_tokens(f.utterance.alignment, frames, frame_rate,
                                                   f.utterance.extra.get("phoneset", "arpabet"))
            except PhoneSetError:  # as for the conversion families: that alignment is left out
                continue
            if len(tokens) < 3:
                continue
            pitch = phone_pitch(lengths, f.frames["lf0"], f.frames["voiced"])
            self.items.append((f, torch.tensor(tokens), torch.tensor(lengths), pitch))
        if not self.items:
            raise ValueError("no utterance has a phone alignment; the synthesizer learns from "
                             "aligned speech: a synthetic corpus, or real speech aligned with "
                             "`python -m vc.data align`")
        left_out = len(features) - len(self.items)
        if left_out:
            warnings.warn(f"{left_out} of {len(features)} utterance(s) have no usable alignment "
                          "and are left out of synthesizer training")
        self.max_frames, self.batch_size = max_frames, batch_size
        self.seed, self.rank, self.silence = seed, rank, silence
        self.embedding_noise = embedding_noise

    def _span(self, lengths: torch.Tensor, generator: torch.Generator) -> tuple[int, int]:
        """Token range [first, last) of at most max_frames frames, from a random start."""
        if int(lengths.sum()) <= self.max_frames:
            return 0, len(lengths)
        first = int(torch.randint(0, len(lengths), (1,), generator=generator))
        last, total = first, 0
        while last < len(lengths) and total + int(lengths[last]) <= self.max_frames:
            total += int(lengths[last])
            last += 1
        return first, max(last, first + 1)

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step * 31 + self.rank)
        picks = torch.randint(0, len(self.items), (self.batch_size,), generator=generator)
        chosen = []
        for i in picks:
            feature, tokens, lengths, pitch = self.items[int(i)]
            first, last = self._span(lengths, generator)
            durations = lengths[first:last].clone()
            durations[0] = min(int(durations[0]), self.max_frames)  # one over-long pause
            start = int(lengths[:first].sum())
            mel = feature.mel[:, start:start + int(durations.sum())]
            durations[-1] -= int(durations.sum()) - mel.shape[-1]  # the mel may end early
            chosen.append((feature, tokens[first:last], durations, pitch[first:last], mel))
        n = max(len(c[1]) for c in chosen)
        t = max(c[4].shape[-1] for c in chosen)
        bands = chosen[0][4].shape[0]
        batch = {"tokens": torch.full((len(chosen), n), PAD, dtype=torch.long),
                 "durations": torch.zeros(len(chosen), n, dtype=torch.long),
                 "pitch": torch.zeros(len(chosen), n),
                 "mel": torch.full((len(chosen), bands, t), self.silence)}
        for b, (_, tokens, durations, pitch, mel) in enumerate(chosen):
            batch["tokens"][b, :len(tokens)] = tokens
            batch["durations"][b, :len(tokens)] = durations
            batch["pitch"][b, :len(tokens)] = pitch
            batch["mel"][b, :, :mel.shape[-1]] = mel
        embedding = torch.stack([c[0].embedding for c in chosen])
        if self.embedding_noise:  # drawn last, from the step's generator: resume stays exact
            noise = torch.randn(embedding.shape, generator=generator) * self.embedding_noise
            embedding = (embedding + noise).clamp_min(0)
            embedding = embedding / embedding.norm(dim=-1, keepdim=True).clamp_min(1e-8)
        batch["embedding"] = embedding
        batch["speaker"] = torch.tensor([c[0].speaker_index for c in chosen])
        return batch


class SynthesizerTrainer(Trainer):
    """`Trainer` for `vc.models.synthesizer.DurationSynthesizer` (family "duration-synth")."""

    def make_batches(self, train, val, silence):
        cfg, rate = self.config, self.mel_config.frame_rate
        batches = TokenBatches(train, rate, cfg.segment_frames, cfg.batch_size, cfg.seed, silence,
                               rank=self.accelerator.process_index,
                               embedding_noise=cfg.embedding_noise)
        val_batches = None
        if val:
            try:
                val_batches = TokenBatches(val, rate, cfg.segment_frames, cfg.batch_size, cfg.seed + 1, silence)
            except ValueError:
                warnings.warn("no held-out utterance has an alignment: no validation losses")
        return batches, val_batches

    def _sample_pair(self, train, val):
        aligned = [f for f in list(val) + list(train) if f.utterance.alignment]
        source = aligned[0]
        target = next((f for f in aligned if f.speaker_index != source.speaker_index), aligned[-1])
        return source, target

    @torch.no_grad()
    def write_sample(self, ema, step: int) -> None:
        """The sample utterance's phones spoken by its own speaker and by another: a wav of
        each, and a PNG of the true and synthesized mels plus the frames given to each phone."""
        source, target = self.sample_pair
        tokens, lengths = alignment_tokens(source.utterance.alignment, source.mel.shape[-1],
                                           ema.mel.frame_rate, source.utterance.extra.get("phoneset", "arpabet"))
        own, durations = ema.synthesize(tokens, source.embedding)
        other, _ = ema.synthesize(tokens, target.embedding)
        griffin = GriffinLim(ema.mel, n_iter=32)
        folder = self.out / "samples"
        folder.mkdir(exist_ok=True)
        Audio(griffin(other.cpu()).numpy(), ema.mel.sample_rate).save(folder / f"step{step:07d}-other.wav")
        self._save_sample(step, Audio(griffin(own.cpu()).numpy(), ema.mel.sample_rate),
                          {f"recorded ({source.utterance.speaker})": source.mel,
                           f"synthesized, own voice, step {step}": own.cpu(),
                           f"synthesized, voice of {target.utterance.speaker}": other.cpu()},
                          ema.mel.frame_rate)
        plot_durations(ema.describe_tokens(tokens), lengths, durations.cpu().tolist(),
                       folder / f"step{step:07d}-durations.png")

    def card_fields(self, step, log, description=None, columns=("recon", "val_recon", "val_duration"),
                    **extra):
        return super().card_fields(step, log, description, columns, **extra)


def plot_durations(symbols: Sequence[str], true: Sequence[int], predicted: Sequence[int],
                   path: Path) -> Path | None:
    """Frames per phone, recorded against predicted, as a PNG (None without matplotlib)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(max(6, len(symbols) * 0.18), 2.6))
    x = torch.arange(len(symbols)).numpy()
    ax.bar(x - 0.2, list(true), width=0.4, label="recorded")
    ax.bar(x + 0.2, list(predicted), width=0.4, label="predicted")
    ax.set_xticks(x, list(symbols), fontsize=6, rotation=90)
    ax.set_ylabel("frames")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path

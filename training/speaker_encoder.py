"""GE2E speaker-encoder training: batches of N speakers x M utterances, the generalized
end-to-end softmax loss of Wan et al. (2018), held-out EER and UMAP plots as it goes.

    SpeakerEncoderTrainer(load_speaker_encoder_config("finetune"), data=[...],
                          out="runs/speaker-encoder-ft", steps=400).train()

The network is `vc.speaker.SpeakerEncoder` (40-band mel power frames, 3-layer LSTM 256, as
Resemblyzer), started from Resemblyzer's weights (`init: "resemblyzer"`), from a published
"ge2e" folder, or from scratch. Each utterance's encoder mel (`SpeakerEncoder.prepare`: 16 kHz,
-30 dBFS, long pauses cut) is cached in CACHE/ge2e/ under a key of its path, size and mtime. A
batch is drawn from a generator seeded by (seed, step): N distinct speakers, M crops each of
one crop length, so a resumed run draws exactly the batches of an uninterrupted one. A speaker
with fewer than M utterances gives several crops of the same utterance(s) (`few_utterances:
"crops"`; every utterance at least once) or is refused (`"refuse"`).

Every `validate_every` steps the live weights embed the held-out clips the way inference does
(`embed_prepared`: 1.6 s windows averaged) and the all-pairs EER is logged: `val_eer` on the
speakers split off the training data, `eval_eer` on `eval_data` (never trained on); step 0 is
the initial weights. Every `umap_every` steps a UMAP projection of those embeddings, coloured
by speaker, goes to RUN_DIR/umap/stepNNNNNNN.png. Every `checkpoint_every` steps the resume
state (weights, optimizer, schedule, step, RNG) is written atomically to RUN_DIR/resume.pt and
the weights are published to RUN_DIR/model (a "ge2e" folder: `SpeakerEncoder.from_pretrained`).

No EMA (a fine-tune of a few hundred steps at a low rate gains nothing from one) and one
process: GE2E's loss couples every utterance of a batch, so splitting batches across processes
would need the embeddings gathered first.
"""
from __future__ import annotations

import dataclasses
import json
import random
import time
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from vc.data import Utterance, split_by_speaker
from vc.devices import check_device
from vc.errors import AudioError, CheckpointError, VoicelabError
from vc.hub import push_to_hub
from vc.speaker import ENCODER_MEL, SAMPLE_RATE, GE2EModel, SpeakerEncoder
from vc.verification import all_pairs_eer, pair_scores

from .checkpoint import (
    load_resume_state, remove_interrupted_writes, restore_training_state, rng_state, save_resume_state,
)
from .config import check_range
from .features import cache_key, load_cached, save_atomically
from .logs import RunLog, plot_losses
from .loop import DATASET_IDS, load_utterances, lr_factor

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
CONFIG_PREFIX = "speaker-encoder-"
RESEMBLYZER_SIZES = {"mel_bands": 40, "hidden": 256, "layers": 3, "embedding": 256}
# Settings that only say how often things happen; a resumed run may change them.
INTERVALS = ("log_every", "validate_every", "umap_every", "checkpoint_every")


class SpeakerDataError(VoicelabError):
    """The data cannot make GE2E batches (too few speakers or utterances)."""


# ----------------------------------------------------------------------------- config
@dataclass
class SpeakerEncoderConfig:
    """How a speaker encoder trains.

    Args:
        init: "resemblyzer" (fine-tune the weights the resemblyzer package ships), "scratch"
            (fresh weights, seeded), or a "ge2e" model folder / checkpoints name / Hub repo id.
        hidden, layers, embedding: network sizes (256, 3, 256 unless from scratch).
        speakers_per_batch: N, distinct speakers per batch.
        utterances_per_speaker: M, crops per speaker per batch (GE2E needs at least 2).
        min_frames, max_frames: each batch's crop length is drawn from this range (10 ms
            frames; inference windows are 160).
        few_utterances: for a speaker with fewer than M utterances, "crops" (several random
            crops of the same utterance(s)) or "refuse" (an error that names the speakers).
        max_utterances_per_speaker: use at most this many (seeded choice) per speaker; 0: all.
        lr, schedule, warmup_steps: Adam's learning rate and its schedule ("constant",
            "cosine" or "noam", as the other trainers).
        grad_clip: clip the gradient norm to this (0: no clipping).
        similarity_grad_scale: gradient multiplier of the similarity scale w and offset b
            (GE2E's 0.01).
        log_every, validate_every, umap_every, checkpoint_every: intervals in steps (UMAP
            plots also at step 0 and at the end; umap_every 0: none).
        val_fraction: fraction of the training data's speakers held out for `val_eer`.
        val_clips_per_speaker: clips per held-out speaker embedded for the EER and UMAP.
        seed: seeds the initialisation, the split and the batches.
    """

    init: str = "resemblyzer"
    hidden: int = 256
    layers: int = 3
    embedding: int = 256
    speakers_per_batch: int = 16
    utterances_per_speaker: int = 4
    min_frames: int = 140
    max_frames: int = 180
    few_utterances: str = "crops"
    max_utterances_per_speaker: int = 0
    lr: float = 1e-4
    schedule: str = "constant"
    warmup_steps: int = 0
    grad_clip: float = 3.0
    similarity_grad_scale: float = 0.01
    log_every: int = 10
    validate_every: int = 100
    umap_every: int = 100
    checkpoint_every: int = 100
    val_fraction: float = 0.1
    val_clips_per_speaker: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        if self.schedule not in ("noam", "cosine", "constant"):
            raise ValueError(f"schedule must be noam, cosine or constant, got {self.schedule!r}")
        if self.few_utterances not in ("crops", "refuse"):
            raise ValueError(f"few_utterances must be 'crops' or 'refuse', got {self.few_utterances!r}")
        if not isinstance(self.init, str) or not self.init:
            raise ValueError(f"init must be 'resemblyzer', 'scratch' or a ge2e model folder, got {self.init!r}")
        for name, (low, high, kind) in _RANGES.items():
            check_range(f"speaker-encoder setting {name}", getattr(self, name), low, high, kind)
        if self.max_frames < self.min_frames:
            raise ValueError(f"max_frames ({self.max_frames}) must be at least min_frames ({self.min_frames})")
        if self.init == "resemblyzer":
            sizes = {k: getattr(self, k) for k in ("hidden", "layers", "embedding")}
            wrong = {k: v for k, v in sizes.items() if v != RESEMBLYZER_SIZES[k]}
            if wrong:
                raise ValueError(f"init 'resemblyzer' needs the released network sizes (hidden 256, "
                                 f"layers 3, embedding 256), got {wrong}; use init 'scratch' for others")

    @property
    def model_sizes(self) -> dict[str, int]:
        return {"mel_bands": 40, "hidden": self.hidden, "layers": self.layers,
                "embedding": self.embedding}


_RANGES: dict[str, tuple[Any, Any, str]] = {
    "hidden": (1, None, "int"), "layers": (1, None, "int"), "embedding": (1, None, "int"),
    "speakers_per_batch": (2, None, "int"), "utterances_per_speaker": (2, None, "int"),
    "min_frames": (1, None, "int"), "max_frames": (1, None, "int"),
    "max_utterances_per_speaker": (0, None, "int"), "lr": ("<0", None, "float"),
    "warmup_steps": (0, None, "int"), "grad_clip": (0, None, "float"),
    "similarity_grad_scale": (0, None, "float"), "log_every": (1, None, "int"),
    "validate_every": (1, None, "int"), "umap_every": (0, None, "int"),
    "checkpoint_every": (1, None, "int"), "val_fraction": (0, "<1", "float"),
    "val_clips_per_speaker": (2, None, "int"), "seed": (0, None, "int"),
}


def speaker_encoder_presets() -> list[str]:
    return sorted(p.stem[len(CONFIG_PREFIX):] for p in CONFIG_DIR.glob(f"{CONFIG_PREFIX}*.json"))


def load_speaker_encoder_config(name_or_file: str | Path, **overrides: Any) -> SpeakerEncoderConfig:
    """A preset ("tiny", "finetune": training/configs/speaker-encoder-NAME.json) or a JSON
    file of the same form, {"model": {sizes}, "train": {settings}}, with `overrides` (None
    values ignored) applied on top."""
    path = Path(name_or_file)
    if path.suffix != ".json" and not path.is_file():
        path = CONFIG_DIR / f"{CONFIG_PREFIX}{name_or_file}.json"
        if not path.is_file():
            raise ValueError(f"no speaker-encoder preset {str(name_or_file)!r}; presets: "
                             f"{', '.join(speaker_encoder_presets())}, or give a .json file")
    if not path.is_file():
        raise FileNotFoundError(f"no config file '{path}'; give a preset "
                                f"({', '.join(speaker_encoder_presets())}) or an existing .json file")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"config file '{path}' is not valid JSON: {error}") from None
    if not isinstance(data, dict) or set(data) - {"model", "train"}:
        raise ValueError(f"config file '{path}' must be an object with 'model' and 'train' sections")
    values = {**data.get("model", {}), **data.get("train", {}),
              **{k: v for k, v in overrides.items() if v is not None}}
    known = {f.name for f in dataclasses.fields(SpeakerEncoderConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"'{path}': unknown speaker-encoder settings {unknown}; known: {sorted(known)}")
    return SpeakerEncoderConfig(**values)


# ----------------------------------------------------------------------------- the loss
def ge2e_loss(embeds: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The GE2E softmax loss (Wan et al., 2018, eq. 6-9), averaged over utterances.

    Args:
        embeds: (N speakers, M utterances, D) unit embeddings.
        weight, bias: the learned similarity scale w (kept above 0) and offset b.

    Each utterance is scored against every speaker's centroid, its own speaker's computed
    without it (so it cannot vote for itself); scores are w * cos + b, and the loss is the
    cross-entropy of the true speaker.
    """
    n, m, _ = embeds.shape
    if n < 2 or m < 2:
        raise ValueError(f"GE2E needs at least 2 speakers x 2 utterances, got {n} x {m}")
    centroids = nn.functional.normalize(embeds.mean(dim=1), dim=-1)                # (N, D)
    excluded = (embeds.sum(dim=1, keepdim=True) - embeds) / (m - 1)                 # (N, M, D)
    excluded = nn.functional.normalize(excluded, dim=-1)
    cos = torch.einsum("jid,kd->jik", embeds, centroids)                            # (N, M, N)
    own = (embeds * excluded).sum(dim=-1)                                           # (N, M)
    mask = torch.eye(n, dtype=torch.bool, device=embeds.device)[:, None, :].expand(n, m, n)
    cos = torch.where(mask, own[..., None].expand(n, m, n), cos)
    logits = cos * weight.clamp_min(1e-6) + bias
    target = torch.arange(n, device=embeds.device).repeat_interleave(m)
    return nn.functional.cross_entropy(logits.reshape(n * m, n), target)


# ----------------------------------------------------------------------------- data
def encoder_mel(wav: np.ndarray, mel=None) -> np.ndarray:
    """The encoder's mel power frames (frames, 40) of a clip prepared by `SpeakerEncoder.prepare`."""
    from vc.mel import MelSpectrogram
    mel = mel or MelSpectrogram(ENCODER_MEL)
    with torch.inference_mode():
        return mel(torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))).T.contiguous().numpy()


def cached_mels(utterances: Sequence[Utterance], cache_dir: str | Path, progress: bool = True
                ) -> tuple[list[tuple[Utterance, torch.Tensor]], list[str]]:
    """(utterance, mel (frames, 40)) of every usable utterance, from CACHE/ge2e where
    possible; also the skipped ones ("name: why"). Entries are keyed by path, size and mtime
    (and the mel settings) and written atomically."""
    from vc.mel import MelSpectrogram
    folder = Path(cache_dir) / "ge2e"
    folder.mkdir(parents=True, exist_ok=True)
    preparer, mel_fn = SpeakerEncoder(), MelSpectrogram(ENCODER_MEL)  # prepare needs no weights
    out, skipped = [], []
    for utt in tqdm(utterances, desc="encoder mels", unit="utt", disable=not progress):
        entry = folder / f"{cache_key(utt.path, ENCODER_MEL)}.npz"
        cached = load_cached(entry, ["mel"])
        if cached is not None:
            out.append((utt, torch.from_numpy(cached["mel"])))
            continue
        try:
            mel = encoder_mel(preparer.prepare(utt.path), mel_fn)
        except AudioError as error:
            skipped.append(f"{utt.path.name}: {error}")
            continue
        save_atomically(entry, mel=mel)
        out.append((utt, torch.from_numpy(mel)))
    return out, skipped


class GE2EBatches:
    """N speakers x M mel crops per batch, a pure function of (seed, step).

    Args:
        mels: speaker -> that speaker's utterance mels (frames, 40).
        speakers_per_batch, utterances_per_speaker: N and M.
        min_frames, max_frames: the range each batch's crop length is drawn from.
        seed: the base seed.
    """

    def __init__(self, mels: dict[str, list[torch.Tensor]], speakers_per_batch: int,
                 utterances_per_speaker: int, min_frames: int, max_frames: int, seed: int):
        self.speakers = sorted(mels)
        self.mels = [mels[s] for s in self.speakers]
        self.n, self.m = speakers_per_batch, utterances_per_speaker
        self.min_frames, self.max_frames, self.seed = min_frames, max_frames, seed
        if len(self.speakers) < self.n:
            raise SpeakerDataError(f"speakers_per_batch is {self.n} but the training data has "
                                   f"{len(self.speakers)} speakers; use --speakers-per-batch "
                                   f"{len(self.speakers)} or fewer, or add data")

    def batch(self, step: int) -> torch.Tensor:
        """(N * M, frames, 40): speaker j's crops are rows j*M .. j*M+M-1."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step * 31)
        frames = int(torch.randint(self.min_frames, self.max_frames + 1, (1,), generator=generator))
        chosen = torch.randperm(len(self.speakers), generator=generator)[:self.n]
        crops = []
        for index in chosen.tolist():
            utts = self.mels[index]
            if len(utts) >= self.m:
                picks = torch.randperm(len(utts), generator=generator)[:self.m]
            else:  # every utterance once, then repeats: different crops of the same speech
                picks = torch.cat([torch.randperm(len(utts), generator=generator),
                                   torch.randint(0, len(utts), (self.m - len(utts),), generator=generator)])
            crops += [self._crop(utts[i], frames, generator) for i in picks.tolist()]
        return torch.stack(crops)

    @staticmethod
    def _crop(mel: torch.Tensor, frames: int, generator: torch.Generator) -> torch.Tensor:
        if len(mel) <= frames:  # short utterance: zero power (silence) after it
            return torch.cat([mel, mel.new_zeros(frames - len(mel), mel.shape[1])])
        start = int(torch.randint(0, len(mel) - frames + 1, (1,), generator=generator))
        return mel[start:start + frames]


def group_by_speaker(items: Sequence[tuple[Utterance, torch.Tensor]]) -> dict[str, list[torch.Tensor]]:
    grouped: dict[str, list[torch.Tensor]] = defaultdict(list)
    for utt, mel in items:
        grouped[utt.speaker].append(mel)
    return dict(grouped)


def check_utterance_counts(counts: dict[str, int], m: int, policy: str) -> None:
    """SpeakerDataError under the "refuse" policy when a speaker has fewer than M utterances,
    naming them, their counts and the M that would work."""
    few = {s: c for s, c in counts.items() if c < m}
    if not few or policy == "crops":
        return
    shown = ", ".join(f"{s} ({c})" for s, c in sorted(few.items(), key=lambda kv: kv[1])[:5])
    more = f" and {len(few) - 5} more" if len(few) > 5 else ""
    least = min(counts.values())
    works = (f"utterances_per_speaker {least} or fewer works for every speaker" if least >= 2
             else "GE2E needs at least 2 utterances per speaker, so drop those speakers")
    raise SpeakerDataError(
        f"{len(few)} training speaker(s) have fewer than utterances_per_speaker={m} utterances: "
        f"{shown}{more}; {works}, or set few_utterances to 'crops' to take several crops of the "
        "same utterance(s)")


def cap_per_speaker(utterances: Sequence[Utterance], limit: int, seed: int) -> list[Utterance]:
    """At most `limit` utterances per speaker (a seeded choice; 0 keeps all)."""
    if limit <= 0:
        return list(utterances)
    grouped: dict[str, list[Utterance]] = defaultdict(list)
    for u in utterances:
        grouped[u.speaker].append(u)
    rng = random.Random(f"voicelab-ge2e-{seed}")
    kept = []
    for speaker in sorted(grouped):
        utts = sorted(grouped[speaker], key=lambda u: str(u.path))
        kept += utts if len(utts) <= limit else sorted(rng.sample(utts, limit), key=lambda u: str(u.path))
    return kept


# ----------------------------------------------------------------------------- held-out clips
@dataclass
class HeldOut:
    """Prepared clips of speakers the encoder does not train on: EER and UMAP material."""

    name: str
    wavs: list[np.ndarray]
    speakers: list[str]

    @classmethod
    def from_utterances(cls, name: str, utterances: Sequence[Utterance], per_speaker: int,
                        seed: int) -> "HeldOut":
        """Up to `per_speaker` clips of each speaker, prepared as `SpeakerEncoder.embed`
        prepares them. A speaker with only one usable clip has it cut into two halves (two
        disjoint stretches of speech, so it has a genuine pair) when each half has at least
        one second; otherwise it only adds impostor pairs."""
        preparer = SpeakerEncoder()
        by_speaker: dict[str, list[np.ndarray]] = defaultdict(list)
        for utt in cap_per_speaker(utterances, per_speaker, seed):
            try:
                by_speaker[utt.speaker].append(preparer.prepare(utt.path))
            except AudioError as error:
                warnings.warn(f"held-out clip left out: {utt.path.name}: {error}")
        wavs, speakers = [], []
        for speaker in sorted(by_speaker):
            clips = by_speaker[speaker]
            if len(clips) == 1 and len(clips[0]) >= 2 * SAMPLE_RATE:
                half = len(clips[0]) // 2
                clips = [clips[0][:half], clips[0][half:]]
            wavs += clips
            speakers += [speaker] * len(clips)
        return cls(name, wavs, speakers)

    def embeddings(self, encoder: SpeakerEncoder, chunk: int = 32) -> np.ndarray:
        """(clips, D) embeddings, as `SpeakerEncoder.embed` computes them."""
        was_training = encoder.training
        encoder.eval()
        try:
            return np.concatenate([encoder.embed_prepared(self.wavs[i:i + chunk])
                                   for i in range(0, len(self.wavs), chunk)])
        finally:
            encoder.train(was_training)

    def can_score(self) -> bool:
        counts = defaultdict(int)
        for s in self.speakers:
            counts[s] += 1
        return len(counts) >= 2 and max(counts.values()) >= 2


def verification_figures(embeddings: np.ndarray, speakers: Sequence[str]) -> dict[str, float]:
    """All-pairs EER with its trial counts, and the mean genuine and impostor cosine."""
    figures = all_pairs_eer(embeddings, speakers)
    genuine, impostor = pair_scores(embeddings, speakers)
    return {**figures, "genuine_mean": float(genuine.mean()), "impostor_mean": float(impostor.mean())}


def plot_umap(embeddings: np.ndarray, speakers: Sequence[str], path: Path, title: str,
              seed: int = 0, groups: Sequence[str] | None = None) -> Path | None:
    """A 2-D UMAP projection of `embeddings` coloured by speaker, as a PNG (None, with a
    warning, when umap-learn or matplotlib is missing or there are too few points).

    `groups` names each point's set (e.g. "val", "eval"): each set gets its own marker, and
    the legend names the speakers of the last set (all speakers when there are 20 or fewer).
    """
    if len(embeddings) < 4:
        warnings.warn(f"no UMAP plot: {len(embeddings)} held-out clips, need at least 4")
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numba / umap deprecation chatter
            import umap
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        warnings.warn(f"no UMAP plot: {error} (pip install umap-learn matplotlib)")
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "n_jobs overridden by random_state", spectral init
        reducer = umap.UMAP(n_neighbors=max(2, min(15, len(embeddings) - 1)), random_state=seed,
                            init="spectral" if len(embeddings) >= 10 else "random", n_jobs=1)
        points = reducer.fit_transform(np.asarray(embeddings, dtype=np.float32))
    labels = np.asarray(list(speakers))
    sets = np.asarray(list(groups) if groups is not None else [""] * len(labels))
    set_names = list(dict.fromkeys(sets.tolist()))
    names = list(dict.fromkeys(labels.tolist()))
    legend_names = names if len(names) <= 20 else list(dict.fromkeys(labels[sets == set_names[-1]].tolist()))
    if len(legend_names) > 20:
        legend_names = []
    # Named speakers get distinct categorical colours; the rest are spread over a colour wheel.
    named = plt.get_cmap("tab10" if len(legend_names) <= 10 else "tab20")
    others = [n for n in names if n not in legend_names]
    wheel = plt.get_cmap("gist_ncar")
    colour = {n: named(i) for i, n in enumerate(legend_names)}
    colour.update({n: wheel(0.05 + 0.85 * i / max(1, len(others) - 1)) for i, n in enumerate(others)})
    fig, ax = plt.subplots(figsize=(7, 6))
    for k, group in enumerate(set_names):
        marker, size = ("o", 16) if k == 0 else ("^", 40)
        for name in names:
            chosen = (labels == name) & (sets == group)
            if chosen.any():
                ax.scatter(points[chosen, 0], points[chosen, 1], s=size, color=colour[name],
                           marker=marker, edgecolors="black" if k else "none", linewidths=0.4,
                           label=f"{name}" + (f" ({group})" if group else "")
                           if name in legend_names else None)
    if legend_names:
        ax.legend(fontsize=7, markerscale=0.8, loc="best")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return path


# ----------------------------------------------------------------------------- the trainer
def build_encoder(config: SpeakerEncoderConfig) -> SpeakerEncoder:
    """The network to train, on the CPU: `config.init`'s weights, or fresh seeded ones."""
    if config.init == "scratch":
        torch.manual_seed(config.seed)
        return SpeakerEncoder(**config.model_sizes)
    encoder = SpeakerEncoder.from_pretrained(config.init)
    if encoder.sizes != config.model_sizes:
        raise ValueError(f"init '{config.init}' has network sizes {encoder.sizes}, but the config "
                         f"says {config.model_sizes}; make them agree")
    return encoder


class SpeakerEncoderTrainer:
    """Trains (or fine-tunes) the GE2E encoder; see the module docstring.

    Args:
        config: the settings (`load_speaker_encoder_config`).
        data: training corpora (anything `vc.data.read_corpus` reads; several are mixed).
        out: the run folder.
        steps: train until this step.
        eval_data: corpora of speakers never trained on, only measured (`eval_eer`).
        resume: continue the run in `out` (required if it holds one).
        cache_dir: the feature cache (default RUN_DIR/../.feature-cache).
        device: "cpu", "cuda", ...
        push_to_hub: publish the final weights to this Hub repo.
    """

    def __init__(self, config: SpeakerEncoderConfig, data: Sequence[str | Path], out: str | Path,
                 steps: int, *, eval_data: Sequence[str | Path] = (), resume: bool = False,
                 cache_dir: str | Path | None = None, device: str = "cpu",
                 push_to_hub: str | None = None, hub_token: str | None = None,
                 progress: bool = True):
        check_range("steps", steps, 1, None, "int")
        self.config, self.steps = config, int(steps)
        self.data, self.eval_data = [str(d) for d in data], [str(d) for d in eval_data]
        if not self.data:
            raise ValueError("no training data given; pass corpus folders or manifests with --data")
        self.out = Path(out)
        self.resume, self.progress = resume, progress
        self.cache_dir = Path(cache_dir) if cache_dir else self.out.parent / ".feature-cache"
        self.device = torch.device(check_device(device))
        self.push_repo, self.hub_token = push_to_hub, hub_token

    # ------------------------------------------------------------------ setup
    def _identity(self) -> dict[str, Any]:
        return {"family": "speaker-encoder", "config": dataclasses.asdict(self.config),
                "data": self.data, "eval_data": self.eval_data}

    def _check_run_folder(self) -> dict[str, Any] | None:
        self.out.mkdir(parents=True, exist_ok=True)
        remove_interrupted_writes(self.out)
        state = load_resume_state(self.out)
        saved = self.out / "run_config.json"
        now = self._identity()
        if state is not None and not self.resume:
            raise CheckpointError(f"'{self.out}' already holds a run at step {state['step']}; pass "
                                  "--resume to continue it, or choose another --out")
        if state is not None and saved.exists():
            before = json.loads(saved.read_text())
            changed = [k for k in ("family", "data", "eval_data") if before.get(k) != now.get(k)]
            old, new = before.get("config", {}), now["config"]
            changed += [k for k in new if k not in INTERVALS and old.get(k) != new[k]]
            if changed:
                raise CheckpointError(
                    f"'{self.out}' was trained with other settings ({', '.join(changed)}; see "
                    f"{saved}); resume with the same ones, or choose another --out")
        saved.write_text(json.dumps(now, indent=2) + "\n")
        return state

    def _prepare_data(self) -> tuple[GE2EBatches, list[HeldOut]]:
        cfg = self.config
        utterances = load_utterances(self.data)
        self.corpora = sorted({u.corpus for u in utterances})
        speakers = sorted({u.speaker for u in utterances})
        if len(speakers) < 2:
            raise SpeakerDataError(
                f"GE2E training needs at least 2 speakers (it learns to tell them apart); the data "
                f"({', '.join(self.data)}) has {len(speakers)}: {', '.join(speakers) or 'none'}")
        train_utts, val_utts = split_by_speaker(utterances, cfg.val_fraction, cfg.seed)
        train_utts = cap_per_speaker(train_utts, cfg.max_utterances_per_speaker, cfg.seed)
        counts = defaultdict(int)
        for u in train_utts:
            counts[u.speaker] += 1
        check_utterance_counts(counts, cfg.utterances_per_speaker, cfg.few_utterances)
        if len(counts) < cfg.speakers_per_batch:
            held = len(speakers) - len(counts)
            raise SpeakerDataError(
                f"speakers_per_batch is {cfg.speakers_per_batch} but {len(counts)} training speakers "
                f"are left after holding out {held} for validation (val_fraction {cfg.val_fraction}); "
                f"use --speakers-per-batch {len(counts)} or fewer, a smaller val_fraction, or more data")
        items, skipped = cached_mels(train_utts, self.cache_dir, self.progress)
        if skipped:
            warnings.warn(f"skipped {len(skipped)} unusable utterance(s), e.g. {skipped[:3]}")
        grouped = group_by_speaker(items)
        self.speakers = sorted(grouped)
        self.single = sum(1 for mels in grouped.values() if len(mels) < cfg.utterances_per_speaker)
        batches = GE2EBatches(grouped, cfg.speakers_per_batch, cfg.utterances_per_speaker,
                              cfg.min_frames, cfg.max_frames, cfg.seed)
        held_out = []
        if val_utts:
            held_out.append(HeldOut.from_utterances("val", val_utts, cfg.val_clips_per_speaker, cfg.seed))
        if self.eval_data:
            eval_utts = load_utterances(self.eval_data)
            overlap = sorted({u.speaker for u in eval_utts} & set(speakers))
            if overlap:
                raise SpeakerDataError(f"eval data speakers are also in the training data: "
                                       f"{', '.join(overlap[:5])}; give held-out speakers only")
            held_out.append(HeldOut.from_utterances("eval", eval_utts, 0, cfg.seed))
        return batches, [h for h in held_out if h.can_score()]

    # ------------------------------------------------------------------ train
    def train(self) -> Path:
        """Run to `steps`; returns the folder of the published weights (RUN_DIR/model)."""
        state = self._check_run_folder()
        cfg = self.config
        batches, held_out = self._prepare_data()
        self.held_out, self.trials = held_out, {}
        model = build_encoder(cfg).to(self.device).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg, self.steps))
        start = 0
        if state is not None:
            start = restore_training_state(state, model, optimizer, scheduler)
        log = RunLog(self.out, start)
        if start == 0 and held_out:  # the initial weights: the "before" figures
            log.write(0, self.validate(model))
            if cfg.umap_every:
                self.plot(model, 0)
        n, m = cfg.speakers_per_batch, cfg.utterances_per_speaker
        bar = tqdm(total=self.steps, initial=start, desc="train speaker encoder", unit="step",
                   disable=not self.progress)
        tick, tick_step = time.perf_counter(), start
        similarity = (model.similarity_weight, model.similarity_bias)
        for step in range(start, self.steps):
            mels = batches.batch(step).to(self.device)
            embeds = model(mels).view(n, m, -1)
            loss = ge2e_loss(embeds, *similarity)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"the loss became {loss.item()} at step {step + 1}; lower the learning rate "
                    f"(now {scheduler.get_last_lr()[0]:.2e}) or resume from the last checkpoint")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            for p in similarity:
                p.grad *= cfg.similarity_grad_scale
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            done = step + 1
            if done % cfg.log_every == 0 or done == self.steps:
                now = time.perf_counter()
                rate = (done - tick_step) / max(now - tick, 1e-9)
                tick, tick_step = now, done
                values = {"loss": loss.item(), "w": model.similarity_weight.item(),
                          "b": model.similarity_bias.item(), "lr": scheduler.get_last_lr()[0],
                          "steps_per_s": rate}
                if done % cfg.validate_every == 0 or done == self.steps:
                    values.update(self.validate(model))
                log.write(done, values)
                bar.set_postfix(loss=f"{values['loss']:.4f}", steps_s=f"{rate:.2f}")
            bar.update(1)
            if cfg.umap_every and (done % cfg.umap_every == 0 or done == self.steps):
                self.plot(model, done)
            if done % cfg.checkpoint_every == 0 or done == self.steps:
                self.checkpoint(model, optimizer, scheduler, done, log)
        bar.close()
        log.close()
        if self.push_repo and start < self.steps:
            push_to_hub(self.out / "model", self.push_repo, token=self.hub_token,
                        commit_message=f"voicelab speaker-encoder training: {self.steps} steps")
        return self.out / "model"

    # ------------------------------------------------------------- periodic work
    def validate(self, model: SpeakerEncoder) -> dict[str, float]:
        """`{name}_eer`, `{name}_genuine` and `{name}_impostor` (mean cosines) per held-out set."""
        values = {}
        for held in self.held_out:
            figures = verification_figures(held.embeddings(model), held.speakers)
            values.update({f"{held.name}_eer": figures["eer"],
                           f"{held.name}_genuine": figures["genuine_mean"],
                           f"{held.name}_impostor": figures["impostor_mean"]})
            self.trials[held.name] = figures
        return values

    def plot(self, model: SpeakerEncoder, step: int) -> Path | None:
        """RUN_DIR/umap/stepNNNNNNN.png: every held-out clip's embedding, coloured by speaker."""
        if not self.held_out:
            return None
        embeddings = np.concatenate([h.embeddings(model) for h in self.held_out])
        speakers = [s for h in self.held_out for s in h.speakers]
        groups = [h.name for h in self.held_out for _ in h.speakers]
        sets = " + ".join(f"{h.name} ({len(set(h.speakers))} speakers, {len(h.speakers)} clips)"
                          for h in self.held_out)
        return plot_umap(embeddings, speakers, self.out / "umap" / f"step{step:07d}.png",
                         f"held-out embeddings, step {step}: {sets}", seed=self.config.seed,
                         groups=groups)

    def checkpoint(self, model, optimizer, scheduler, step: int, log: RunLog) -> None:
        state = {"step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "rng": rng_state(),
                 "run": self._identity()}
        save_resume_state(self.out, state)
        GE2EModel.from_encoder(model).save_pretrained(self.out / "model", card=self.card_fields(step, log))
        plot_losses(log, self.out / "loss.png", ("loss", "train GE2E loss"),
                    ("val_eer", "validation EER"), ("eval_eer", "held-out real EER"))

    def card_fields(self, step: int, log: RunLog) -> dict[str, Any]:
        """Model-card fields: data, settings, and EER at step 0 and now per held-out set."""
        cfg = self.config
        kinds = sorted({name.split("-")[0].split(":")[0] for name in self.corpora})
        real = [k for k in kinds if k in DATASET_IDS]
        start = {"resemblyzer": "the GE2E weights the resemblyzer package ships",
                 "scratch": "fresh weights"}.get(cfg.init, f"the ge2e model {cfg.init}")
        training: dict[str, Any] = {
            "steps": step, "init": cfg.init, "data": ", ".join(self.data),
            "training speakers": len(self.speakers),
            "speakers with fewer than M utterances (M crops of their utterances)": self.single,
            "speakers x utterances per batch": f"{cfg.speakers_per_batch} x {cfg.utterances_per_speaker}",
            "crop frames": f"{cfg.min_frames}-{cfg.max_frames}", "lr": cfg.lr,
            "schedule": cfg.schedule}
        metrics = []
        for name, label in (("val", "validation speakers split off the training data"),
                            ("eval", f"held-out speakers: {', '.join(self.eval_data)}")):
            steps, values = log.series(f"{name}_eer")
            if not values:
                continue
            figures = self.trials.get(name, {})
            training[f"{name} EER at step 0"] = round(values[0], 5)
            training[f"{name} EER at step {steps[-1]}"] = round(values[-1], 5)
            if figures:
                training[f"{name} trials"] = (f"{figures['genuine_pairs']} genuine + "
                                              f"{figures['impostor_pairs']} impostor pairs, "
                                              f"{figures['clips']} clips of {figures['speakers']} speakers")
            metrics.append({"dataset": {"type": f"voicelab-{name}", "name": label},
                            "task": {"type": "speaker-verification", "name": "speaker verification"},
                            "metrics": [{"type": "eer", "value": round(values[-1], 5),
                                         "name": "EER, all pairs of clips"}]})
        description = (
            f"GE2E speaker encoder (Wan et al., 2018): a {cfg.layers}-layer LSTM of {cfg.hidden} "
            f"over 40-band mel power frames of 1.6 s partial utterances, a linear + ReLU layer and "
            f"L2 normalisation, giving {cfg.embedding}-d unit speaker embeddings (the same network "
            f"and preprocessing as Resemblyzer).\n\nTrained with `python -m training "
            f"speaker-encoder` from {start} for {step} steps of {cfg.speakers_per_batch} speakers x "
            f"{cfg.utterances_per_speaker} utterances on {', '.join(self.data)} "
            f"({len(self.speakers)} speakers). {self.single} of them have fewer than "
            f"{cfg.utterances_per_speaker} utterances (LibriSpeech train-clean-100 here has one per "
            f"speaker): their {cfg.utterances_per_speaker} \"utterances\" are random crops of the "
            f"same recording(s), so for them the loss rewards consistency within a recording.")
        return {"description": description, "datasets": [DATASET_IDS[k] for k in real],
                "license": "apache-2.0" if cfg.init == "resemblyzer" else ("cc-by-4.0" if real else "mit"),
                "training": training, "metrics": metrics or None, "repo_id": self.push_repo}

"""Training settings: one dataclass, named presets per model family, and config files.

A config is `{"model": {...constructor settings...}, "train": {...TrainConfig fields...}}`.
`--config small` or `--config paper` picks a named preset; `--config FILE.json` reads a file
whose "model" may name a preset to start from (`"preset": "small"`) and override its settings.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vc.hub import model_class


@dataclass
class TrainConfig:
    """How a run trains, whatever the model.

    Args:
        batch_size: segments per step (per process).
        segment_frames: mel frames per training segment.
        lr: peak learning rate.
        schedule: "noam" (linear warm-up, then inverse square root), "cosine" (warm-up,
            then cosine decay to 0 at `steps`), or "constant" (after warm-up).
        warmup_steps: steps of linear warm-up.
        weight_decay: AdamW weight decay.
        grad_clip: clip the gradient norm to this (0: no clipping).
        ema_decay: decay of the weight average published as the model (0: publish live weights).
        log_every, validate_every, sample_every, checkpoint_every: intervals in steps.
        val_fraction: fraction of speakers held out for validation and samples.
        seed: seeds the model initialisation, the batches and the split.
        init_from: a model folder, training run or checkpoints/ name whose weights start the
            run (fine-tuning; its model type and shapes must match), instead of random ones.
    """

    batch_size: int = 8
    segment_frames: int = 128
    lr: float = 1e-3
    schedule: str = "noam"
    warmup_steps: int = 200
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    log_every: int = 10
    validate_every: int = 250
    sample_every: int = 500
    checkpoint_every: int = 500
    val_fraction: float = 0.1
    seed: int = 0
    init_from: str | None = None

    def __post_init__(self) -> None:
        if self.init_from is not None and not isinstance(self.init_from, str):
            raise ValueError(f"train setting init_from must be a model folder or name, got {self.init_from!r}")
        if self.schedule not in ("noam", "cosine", "constant"):
            raise ValueError(f"schedule must be noam, cosine or constant, got {self.schedule!r}")
        for name, (low, high, kind) in _RANGES.items():
            if hasattr(self, name):
                check_range(f"train setting {name}", getattr(self, name), low, high, kind)


# Setting -> (lowest, highest, "int"/"float"), "<" before a bound excluding it; checked for
# every config, whichever class has the field.
_RANGES: dict[str, tuple[Any, Any, str]] = {
    "batch_size": (1, None, "int"), "segment_frames": (1, None, "int"),
    "lr": ("<0", None, "float"), "warmup_steps": (0, None, "int"),
    "weight_decay": (0, None, "float"), "grad_clip": (0, None, "float"),
    "ema_decay": (0, "<1", "float"), "log_every": (1, None, "int"),
    "validate_every": (1, None, "int"), "sample_every": (1, None, "int"),
    "checkpoint_every": (1, None, "int"), "val_fraction": (0, "<1", "float"),
    "seed": (0, None, "int"), "adversarial_start": (0, None, "int"),
    "discriminator_width": ("<0", None, "float"), "mel_loss_weight": (0, None, "float"),
    "magnitude_loss_weight": (0, None, "float"), "phase_loss_weight": (0, None, "float"),
    "stft_loss_weight": (0, None, "float"), "f0_loss_weight": (0, None, "float"),
    "adam_beta1": (0, "<1", "float"), "adam_beta2": (0, "<1", "float"),
    "embedding_noise": (0, 1, "float"),
}


def check_range(what: str, value: Any, low: Any = None, high: Any = None, kind: str = "int") -> None:
    """ValueError naming `what` and the range that works, unless `value` is a finite number
    of `kind` ("int" or "float") within [low, high] (a bound given as "<x" excludes x; None
    leaves that side open)."""
    def parse(bound):
        return (None, False) if bound is None else \
            (float(bound[1:]), True) if isinstance(bound, str) else (bound, False)

    def show(bound):
        return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"
    (lo, lo_open), (hi, hi_open) = parse(low), parse(high)
    words = [f"{'above' if lo_open else 'at least'} {show(lo)}"] if lo is not None else []
    if hi is not None:
        words.append(f"{'below' if hi_open else 'at most'} {show(hi)}")
    wanted = ("a whole number" if kind == "int" else "a number") + \
        (f" {'of ' if kind == 'int' and not lo_open else ''}" + " and ".join(words) if words else "")
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "int" and number and isinstance(value, float) and value.is_integer():
        value = int(value)
    ok = number and (kind == "float" or isinstance(value, int)) and math.isfinite(value) \
        and (lo is None or (value > lo if lo_open else value >= lo)) \
        and (hi is None or (value < hi if hi_open else value <= hi))
    if not ok:
        raise ValueError(f"{what} must be {wanted}, got {value!r}")


# What a vocoder's generator is judged by (training.gan.Discriminators).
DISCRIMINATOR_KINDS = ("mpd+msd", "mpd+mrd")


@dataclass
class VocoderTrainConfig(TrainConfig):
    """How a vocoder trains: HiFi-GAN's settings by default (8192-sample segments, AdamW with
    betas 0.8/0.99 at 2e-4, mel loss x45 plus adversarial and feature-matching losses).

    Args:
        adversarial_start: train the generator on the mel loss alone until this step, then add
            the discriminators (a cheap warm-up where GAN steps are costly, as on a CPU).
        discriminator_width: scales every discriminator channel count (1.0: as published).
        discriminators: "mpd+msd" as published, or "mpd+mrd" (multi-resolution spectrogram
            discriminator in place of the multi-scale one: a discriminator pass ~2.5x cheaper
            on a CPU).
        mel_loss_weight: weight of the multi-resolution log-mel L1.
        magnitude_loss_weight, phase_loss_weight: for inverse-STFT heads, weights of the direct
            log-magnitude and phase losses (APNet's 45 and 100; 0 turns them off).
        stft_loss_weight: weight of the multi-resolution linear-frequency STFT loss (spectral
            convergence plus log-magnitude L1), which sees single harmonics that log-mels blur.
        f0_loss_weight: for vocoders that predict F0 (the harmonic-plus-noise `ddsp`), weight of
            its error in semitones against pYIN labels of the training audio.
        adam_beta1, adam_beta2: AdamW betas for generator and discriminators.
    """

    batch_size: int = 16
    segment_frames: int = 32
    lr: float = 2e-4
    schedule: str = "constant"
    warmup_steps: int = 0
    weight_decay: float = 0.01
    grad_clip: float = 0.0
    ema_decay: float = 0.0
    log_every: int = 50
    validate_every: int = 500
    sample_every: int = 1000
    checkpoint_every: int = 1000
    adversarial_start: int = 0
    discriminator_width: float = 1.0
    discriminators: str = "mpd+msd"
    mel_loss_weight: float = 45.0
    magnitude_loss_weight: float = 0.0
    phase_loss_weight: float = 0.0
    stft_loss_weight: float = 0.0
    f0_loss_weight: float = 0.0
    adam_beta1: float = 0.8
    adam_beta2: float = 0.99

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.discriminators not in DISCRIMINATOR_KINDS:
            raise ValueError(f"train setting discriminators must be one of {', '.join(DISCRIMINATOR_KINDS)}, "
                             f"got {self.discriminators!r}")


# Per family and preset: the training settings that go with the model preset of that name.
TRAIN_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "autovc": {"small": dict(lr=1e-3, segment_frames=128),
               "paper": dict(lr=1e-4, batch_size=2, segment_frames=128, schedule="constant",
                             warmup_steps=0)},
    "vqvc": {"small": dict(lr=1e-3, segment_frames=128),
             "paper": dict(lr=1e-3, batch_size=32, segment_frames=128)},
    "vqvae": {"small": dict(lr=1e-3, segment_frames=128),
              "paper": dict(lr=4e-4, batch_size=52, segment_frames=128, schedule="cosine")},
    # batches of 16 x 128 frames take about 0.6 s a step on 2 CPU cores (small)
    "ppgvc": {"tiny": dict(lr=2e-3, segment_frames=64),
              "small": dict(lr=1e-3, batch_size=16, segment_frames=128, schedule="cosine", warmup_steps=500),
              "base": dict(lr=7e-4, batch_size=32, segment_frames=160, schedule="cosine", warmup_steps=1000)},
    # v1-v3 as published; tiny and fast with quarter-width discriminators for CPUs. The fast
    # preset sees ~50 frames either side, so it trains on segments several times that long:
    # on 32-frame segments every frame is near an edge and whole utterances come out wrong.
    "hifigan": {"v1": {}, "v2": {}, "v3": {},
                "tiny": dict(lr=5e-4, discriminator_width=0.25),
                "fast": dict(lr=5e-4, discriminator_width=0.25, segment_frames=128, batch_size=8)},
    # Spectral losses only (no discriminators): the oscillators make the phase.
    "ddsp": {"tiny": dict(lr=1e-3, segment_frames=32, batch_size=4, adversarial_start=10**9,
                          stft_loss_weight=1.0, f0_loss_weight=1.0),
             "fast": dict(lr=1e-3, segment_frames=96, batch_size=8, schedule="cosine",
                          adversarial_start=10**9, discriminator_width=0.25, stft_loss_weight=1.0,
                          f0_loss_weight=1.0)},
}


@dataclass
class SynthesizerTrainConfig(TrainConfig):
    """How a text-to-mel synthesizer trains.

    Args:
        embedding_noise: standard deviation of Gaussian noise added to each item's GE2E
            embedding (then clipped at 0 and re-normalised, as GE2E embeddings are): trained on
            each utterance's own embedding, the decoder meets at cloning time an embedding of
            other speech, which differs from the one it would have for the sentence; 0.03 moves
            a GE2E embedding to cosine ~0.92 of itself, about where a speaker's clips lie from
            each other (0.84-0.93 on LibriSpeech and VCTK clips).
    """

    embedding_noise: float = 0.0


TRAIN_CLASSES: dict[str, type[TrainConfig]] = {"hifigan": VocoderTrainConfig, "ddsp": VocoderTrainConfig,
                                               "duration-synth": SynthesizerTrainConfig}


@dataclass
class RunConfig:
    family: str
    model: dict[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    preset: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "preset": self.preset, "model": self.model,
                "train": dataclasses.asdict(self.train)}


def load_run_config(family: str, name_or_file: str) -> RunConfig:
    """A preset name ("small", "paper") or a JSON file, resolved for `family`."""
    cls = model_class(family)
    path = Path(name_or_file)
    if path.suffix == ".json" or path.is_file():
        if not path.is_file():
            raise FileNotFoundError(f"no config file '{path}'; give a preset "
                                    f"({', '.join(sorted(cls.presets))}) or an existing .json file")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"config file '{path}' is not valid JSON: {error}") from None
        unknown = set(data) - {"model", "train"}
        if unknown:
            raise ValueError(f"config file '{path}' has unknown sections {sorted(unknown)}; "
                             "use 'model' and 'train'")
        model = dict(data.get("model", {}))
        preset = model.pop("preset", None)
        base = _preset(family, cls, preset) if preset else RunConfig(
            family, train=TRAIN_CLASSES.get(family, TrainConfig)())
        train = {**dataclasses.asdict(base.train), **data.get("train", {})}
        return RunConfig(family, {**base.model, **model}, _train_config(family, train, path), preset)
    return _preset(family, cls, name_or_file)


def _preset(family: str, cls: type, name: str) -> RunConfig:
    if name not in cls.presets:
        raise ValueError(f"{family} has no preset {name!r}; presets: {', '.join(sorted(cls.presets))}, "
                         "or give a .json config file")
    train = TRAIN_PRESETS.get(family, {}).get(name, {})
    return RunConfig(family, dict(cls.presets[name]), TRAIN_CLASSES.get(family, TrainConfig)(**train), name)


def _train_config(family: str, values: dict[str, Any], source: Path) -> TrainConfig:
    cls = TRAIN_CLASSES.get(family, TrainConfig)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"'{source}': unknown train settings {sorted(unknown)}; known: {sorted(known)}")
    return cls(**values)

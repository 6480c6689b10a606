"""Training steps per second per family, with the repository's own loop (`training.loop.Trainer`,
`training.vocoder_loop.VocoderTrainer`) on each family's shipped preset.

Each family trains in a fresh process (one shared process with `--tiny`) for `--train-steps`
steps on the first utterances of LibriSpeech train-clean-100 (features are computed first and
not timed). The loop logs its
steps per second twice: the first half includes the one-off warm-up (allocator, cuDNN), the
second half is the figure reported. Part of the GPU table (`--device cuda`); on a CPU it runs
only when named in `--only`.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from .common import BenchmarkError, Settings, Speech, in_fresh_process

FAMILIES = {"autovc": "small", "vqvc": "small", "vqvae": "small", "ppgvc": "small", "hifigan": "fast"}
VOCODER_FAMILIES = ("hifigan",)


def training_data(settings: Settings, speech: Speech) -> Path:
    """A folder linking the first `train_utterances` files of train-clean-100 (one reader each)."""
    source = speech.root / "librispeech" / "train-clean-100"
    files = sorted(source.rglob("*.flac"))[:settings.train_utterances] if source.is_dir() else []
    if len(files) < 2:
        raise BenchmarkError(f"training speed needs LibriSpeech train-clean-100 at {source}; "
                             "or leave it out with --skip training")
    folder = settings.work / "train-data"
    folder.mkdir(parents=True, exist_ok=True)
    for path in files:
        link = folder / path.name
        if not link.exists():
            link.symlink_to(path.resolve())
    return folder


def run(settings: Settings, speech: Speech, reference: dict, progress) -> dict:
    data = training_data(settings, speech)
    specs = [{"family": family, "preset": preset, "data": str(data), "steps": settings.train_steps,
              "batch": settings.train_batch, "out": str(settings.work / "train" / family),
              "cache": str(settings.work / "feature-cache")} for family, preset in FAMILIES.items()]
    # a fresh process per family; --tiny shares one to save the start-ups
    groups = [[spec] for spec in specs] if settings.isolate else [specs]
    rows = []
    for group in groups:
        progress("training " + ", ".join(spec["family"] for spec in group))
        try:
            measured = in_fresh_process("train_speed.measure_families", {"families": group}, settings)["families"]
        except BenchmarkError as err:
            measured = [{"error": str(err)} for _ in group]
        rows += [{"family": spec["family"], "preset": spec["preset"], **row} for spec, row in zip(group, measured)]
    return {"data": f"{settings.train_utterances} utterances of LibriSpeech train-clean-100",
            "steps": settings.train_steps, "families": rows,
            "batch": "each preset's" if not settings.train_batch else
                     f"{settings.train_batch[0]} x {settings.train_batch[1]} frames (--tiny)"}


def measure_families(spec: dict) -> dict:
    """Worker: each family of `spec["families"]` in turn."""
    rows = []
    for one in spec["families"]:
        try:
            rows.append(measure_training(one))
        except Exception as err:  # noqa: BLE001 - the other families still run
            rows.append({"error": f"{type(err).__name__}: {err}"})
    return {"families": rows}


def measure_training(spec: dict) -> dict:
    """Worker: train one family for `steps` steps and read its steps per second off log.csv."""
    import csv

    from training.config import load_run_config

    family, steps = spec["family"], int(spec["steps"])
    run = load_run_config(family, spec["preset"])
    never = 10 * steps + 10  # validation, samples and checkpoints only at the end, after the timing
    run.train = dataclasses.replace(run.train, log_every=max(1, steps // 2), validate_every=never,
                                    sample_every=never, checkpoint_every=never)
    if spec.get("batch"):  # --tiny: small batches, so the check is quick
        run.train = dataclasses.replace(run.train, batch_size=spec["batch"][0], segment_frames=spec["batch"][1])
    options = dict(cache_dir=spec["cache"], progress=False)
    if family in VOCODER_FAMILIES:
        from training.vocoder_loop import VocoderTrainer
        trainer = VocoderTrainer(run, [spec["data"]], spec["out"], steps, **options)
    else:
        from training.loop import Trainer
        trainer = Trainer(run, [spec["data"]], spec["out"], steps, **options)
    start = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - start
    with open(Path(spec["out"]) / "log.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("steps_per_s")]
    if not rows:
        raise BenchmarkError(f"the {family} run logged no steps per second")
    return {"steps_per_second": float(rows[-1]["steps_per_s"]), "batch_size": run.train.batch_size,
            "segment_frames": run.train.segment_frames, "wall_seconds": wall,
            "device": str(trainer.accelerator.device)}

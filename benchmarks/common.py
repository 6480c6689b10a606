"""What every section shares: the settings, the machine, the real-speech inputs, timing, and
running a measurement in a fresh process (so its peak memory is its own)."""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from vc.errors import VoicelabError

REPO = Path(__file__).resolve().parents[1]
SAMPLE_RATE = 16000
GAP_SECONDS = 0.3  # silence between concatenated utterances
REFERENCE_SPEAKER = "367"  # a female test-other reader; the sources are the other four
REFERENCE_SECONDS = 6.0  # at least this much reference speech (whole clips)


class BenchmarkError(VoicelabError):
    """A benchmark cannot run with what it was given; the message says what to do."""


@dataclass
class Settings:
    """Everything a section needs to know (see `python -m benchmarks --help`)."""

    threads: int
    device: str
    work: Path
    speech: Path
    registry: Path = REPO / "models.json"
    tiny: bool = False
    isolate: bool = True  # a fresh process per chain
    repeats: int = 3
    chain_seconds: tuple[float, ...] = (5.0, 60.0)
    growth_seconds: tuple[float, ...] = (5.0, 30.0, 120.0, 600.0)
    vocoder_seconds: float = 10.0
    vocoder_clips: int = 6
    extra_vocoders: tuple[str, ...] = ()
    write_vocoder_cards: bool = False
    encoder_seconds: tuple[float, ...] = (10.0, 60.0)
    clients: int = 8
    rounds: int = 2
    web_seconds: float = 5.0
    concurrency: int = 2
    eval_trials: int = 4
    alignments: Path | None = None
    train_steps: int = 40
    train_utterances: int = 32
    train_batch: tuple[int, int] | None = None  # (batch, frames) instead of each preset's
    quiet: bool = False
    notes: list[str] = field(default_factory=list)

    @classmethod
    def tiny_overrides(cls) -> dict:
        """What `--tiny` changes: inputs of a few seconds, one repeat, one client, one trial."""
        return dict(tiny=True, isolate=False, repeats=1, chain_seconds=(2.0, 4.0), growth_seconds=(2.0, 4.0),
                    vocoder_seconds=1.0, vocoder_clips=1, encoder_seconds=(2.0,), clients=1, rounds=1,
                    web_seconds=2.0, concurrency=1, eval_trials=1, train_steps=2, train_utterances=4,
                    train_batch=(2, 32))

    def to_dict(self) -> dict:
        skip = {"work", "notes", "quiet"}
        return {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
                for k, v in self.__dict__.items() if k not in skip}


# ------------------------------------------------------------------------------ the machine
def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (platform's guess elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2 ** 20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def machine(settings: Settings) -> dict:
    """Where and when the run happens, and what else was running (load at the start)."""
    import psutil
    import torch

    from vc import __version__

    cores = os.cpu_count() or 1
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    processes = list(psutil.process_iter(["pid", "name", "cmdline"]))
    for process in processes:
        try:
            process.cpu_percent(None)  # starts each process's measuring window
        except psutil.Error:
            pass
    busy = psutil.cpu_percent(interval=1.0)  # whole machine, over one second before we start
    others = []
    for process in processes:
        try:
            share = process.cpu_percent(None)
        except psutil.Error:
            continue
        if process.pid != os.getpid() and share >= 5.0:
            words = [w for w in (process.info.get("cmdline") or [])[:4] if not w.startswith("/")] or \
                [process.info.get("name") or "?"]
            others.append({"pid": process.pid, "cpu_percent": share, "command": " ".join(words)[:80]})
    load = load_average()
    info = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "platform": platform.platform(), "cpu": cpu_model(), "cores": cores, "usable_cores": usable,
        "threads": settings.threads, "memory_gib": memory_gib(), "device": settings.device,
        "python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
        "voicelab": __version__, "load_average_start": load, "cpu_busy_percent_start": busy,
        "other_processes": sorted(others, key=lambda o: -o["cpu_percent"])[:5],
    }
    if settings.device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(settings.device))
        info["cuda"] = torch.version.cuda
    # another job is running when the machine was busy before we began (1-minute load average)
    info["other_load"] = bool((load and load[0] >= 0.5) or busy >= 25.0)
    return info


# ------------------------------------------------------------------------------ real speech
class Speech:
    """Real speech inputs from LibriSpeech test-other: sources of any length (the utterances of
    four readers concatenated with short pauses, looped where more is asked for than there is)
    and the reference clips of a fifth reader."""

    def __init__(self, root: Path, work: Path):
        self.root = Path(root)
        self.folder = self.root / "librispeech" / "test-other"
        speakers = sorted(d for d in self.folder.iterdir() if d.is_dir()) if self.folder.is_dir() else []
        by_name = {d.name: sorted(d.glob("*.flac")) for d in speakers}
        if REFERENCE_SPEAKER not in by_name or len([s for s in by_name if by_name[s]]) < 2:
            raise BenchmarkError(
                f"no real speech at {self.folder} (LibriSpeech test-other with speaker {REFERENCE_SPEAKER} "
                "and at least one more); point --speech (or $VOICELAB_REAL_SPEECH) at the real-speech "
                "folder, e.g. ../shared/real-speech")
        self.reference_clips = self._references(by_name.pop(REFERENCE_SPEAKER))
        self.source_clips = [p for name in sorted(by_name) for p in by_name[name]]
        self.source_speakers = sorted(n for n in by_name if by_name[n])
        self.out = Path(work) / "speech"
        self.out.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def _references(clips: list[Path]) -> list[Path]:
        import soundfile as sf
        chosen, total = [], 0.0
        for clip in clips:
            chosen.append(clip)
            total += sf.info(clip).duration
            if total >= REFERENCE_SECONDS and len(chosen) >= 2:
                break
        return chosen

    def references(self) -> list[Path]:
        return list(self.reference_clips)

    def reference_seconds(self) -> float:
        import soundfile as sf
        return round(sum(sf.info(p).duration for p in self.reference_clips), 1)

    def clip(self, seconds: float) -> Path:
        """A wav of exactly `seconds` of real speech (made once per length, in the work folder)."""
        import soundfile as sf
        path = self.out / f"source-{seconds:g}s.wav"
        if path.is_file():
            return path
        wanted = int(round(seconds * SAMPLE_RATE))
        gap = np.zeros(int(GAP_SECONDS * SAMPLE_RATE), dtype=np.float32)
        parts, have, index = [], 0, 0
        while have < wanted:
            samples, rate = sf.read(self.source_clips[index % len(self.source_clips)], dtype="float32",
                                    always_2d=True)
            if rate != SAMPLE_RATE:
                raise BenchmarkError(f"{self.source_clips[index]} is at {rate} Hz; LibriSpeech is 16 kHz")
            parts += [samples.mean(axis=1), gap]
            have += len(samples) + len(gap)
            index += 1
        sf.write(path, np.concatenate(parts)[:wanted], SAMPLE_RATE, subtype="PCM_16")
        return path

    def describe(self) -> str:
        return (f"LibriSpeech test-other, readers {', '.join(self.source_speakers)} concatenated "
                f"({GAP_SECONDS:g} s pauses, looped past {self._unique_seconds():.0f} s); references: "
                f"{len(self.reference_clips)} clips of reader {REFERENCE_SPEAKER} ({self.reference_seconds():g} s)")

    def _unique_seconds(self) -> float:
        import soundfile as sf
        return sum(sf.info(p).duration + GAP_SECONDS for p in self.source_clips)


# ------------------------------------------------------------------------------ timing
def synchronizer(device: str) -> Callable[[], None]:
    """Waits for queued GPU work (timings on CUDA would otherwise measure only the launch)."""
    if device.startswith("cuda"):
        import torch
        return lambda: torch.cuda.synchronize(torch.device(device))
    return lambda: None


UNSTEADY = 1.5  # repeats further apart than this (slowest / fastest) are marked in the tables


@dataclass(frozen=True)
class Timing:
    """Wall seconds of repeated calls: the fastest (what speeds are computed from: other load
    only ever adds time, so the fastest repeat is the least disturbed), the median, and the
    spread (slowest / fastest; above `UNSTEADY` the figure is marked as disturbed)."""

    best: float
    median: float
    spread: float

    def to_dict(self) -> dict:
        return {"best_seconds": self.best, "median_seconds": self.median, "spread": self.spread}


def timed(fn: Callable[[], object], repeats: int, warmup: int = 1,
          sync: Callable[[], None] = lambda: None) -> Timing:
    """`repeats` timed calls of `fn` after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return Timing(min(times), statistics.median(times), max(times) / max(min(times), 1e-12))


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB.

    On Linux this is VmHWM of /proc/self/status, the high-water mark of the running program:
    `ru_maxrss` would not do for a measuring child, since Linux carries the high-water mark of
    the process it was forked from across exec (a child of a 900 MiB parent starts at 900 MiB).
    Elsewhere `ru_maxrss` (bytes on macOS, KiB on other systems)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2 ** 20 if sys.platform == "darwin" else peak / 1024


def child_env(threads: int, device: str) -> dict[str, str]:
    """The environment of a measuring child process: `threads` threads everywhere, no GPU
    visible when measuring the CPU, the repository importable."""
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(threads)
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("HF_HUB_OFFLINE", "1")  # models come from checkpoints/ and the local cache
    return env


def in_fresh_process(function: str, spec: dict, settings: Settings, timeout: float = 3600.0) -> dict:
    """`benchmarks.MODULE.FUNCTION(spec)` run in a new Python process with the run's threads and
    device; returns its result, to which the worker adds `peak_rss_mb` (the child's own)."""
    spec = {**spec, "threads": settings.threads, "device": settings.device}
    with tempfile.TemporaryDirectory(dir=settings.work) as tmp:
        spec_path, result_path = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        spec_path.write_text(json.dumps(spec))
        try:
            done = subprocess.run([sys.executable, "-m", "benchmarks.worker", function, str(spec_path),
                                   str(result_path)], cwd=REPO, env=child_env(settings.threads, settings.device),
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BenchmarkError(f"{function} did not finish within {timeout:.0f} s") from None
        if done.returncode != 0 or not result_path.is_file():
            lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
            why = lines[-1] if lines else f"exit status {done.returncode}"
            raise BenchmarkError(f"{function} failed: {why}")
        return json.loads(result_path.read_text())

"""What a run leaves for people to look at: a CSV log, TensorBoard events, plots, samples."""
from __future__ import annotations

import csv
import warnings
from pathlib import Path
from typing import Any

import torch


class RunLog:
    """Appends one row per logged step to RUN_DIR/log.csv and mirrors it to TensorBoard.

    On resume, rows after the resumed step are dropped first: they came from steps
    after the last checkpoint, which the resumed run will take again.
    """

    def __init__(self, run_dir: Path, start_step: int):
        self.path = Path(run_dir) / "log.csv"
        self.rows: list[dict[str, Any]] = []
        if self.path.exists():
            with open(self.path, newline="") as handle:
                self.rows = [r for r in csv.DictReader(handle) if int(r["step"]) <= start_step]
        self.columns: list[str] = list(self.rows[0]) if self.rows else []
        self._rewrite()
        self.tensorboard = None
        try:
            from torch.utils.tensorboard import SummaryWriter
            self.tensorboard = SummaryWriter(str(Path(run_dir) / "tensorboard"), purge_step=start_step)
        except ImportError:
            warnings.warn("tensorboard is not installed; logging to log.csv only")

    def _rewrite(self) -> None:
        with open(self.path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.columns or ["step"])
            writer.writeheader()
            writer.writerows(self.rows)

    def write(self, step: int, values: dict[str, float]) -> None:
        row = {"step": step, **{k: f"{v:.6g}" for k, v in values.items()}}
        new_columns = [k for k in row if k not in self.columns]
        self.rows.append(row)
        if new_columns:
            self.columns += new_columns
            self._rewrite()
        else:
            with open(self.path, "a", newline="") as handle:
                csv.DictWriter(handle, fieldnames=self.columns).writerow(row)
        if self.tensorboard is not None:
            for key, value in values.items():
                self.tensorboard.add_scalar(key.replace("val_", "val/", 1), value, step)

    def series(self, column: str) -> tuple[list[int], list[float]]:
        points = [(int(r["step"]), float(r[column])) for r in self.rows if r.get(column)]
        return [p[0] for p in points], [p[1] for p in points]

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


DEFAULT_CURVES = (("loss", "train loss"), ("recon", "train recon"), ("val_recon", "validation recon"))


def plot_losses(log: RunLog, path: Path, *curves: tuple[str, str]) -> Path | None:
    """Logged columns against step, as a PNG: `curves` are (column, label) pairs (by default
    training and validation reconstruction loss)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for column, label in curves or DEFAULT_CURVES:
        steps, values = log.series(column)
        if steps:
            ax.plot(steps, values, label=label, marker="o" if column.startswith("val") else None)
    ax.set_xlabel("step")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_mels(mels: dict[str, torch.Tensor], path: Path, frame_rate: float) -> Path | None:
    """Mel spectrograms one above the other, titled with their names, as a PNG."""
    try:
        from vc.plots import mel_figure
        fig = mel_figure(mels, frame_rate)
    except ImportError:  # matplotlib is optional for training
        return None
    fig.savefig(path, dpi=90)
    return path

"""Pictures people would rather look at than read: mel spectrograms.

Figures are built with matplotlib's object API (no pyplot state), so they are safe to make from
several threads at once, as a web server does.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import torch


def mel_figure(mels: Mapping[str, torch.Tensor | np.ndarray], frame_rate: float, width: float = 8.0,
               height_each: float = 2.2):
    """Log-mel spectrograms (n_mels, frames) one above the other, titled with their names;
    a shared colour scale, so louder and quieter clips compare at a glance."""
    from matplotlib.figure import Figure

    arrays = {name: (m.detach().cpu().float().numpy() if isinstance(m, torch.Tensor) else np.asarray(m))
              for name, m in mels.items()}
    low = min(float(a.min()) for a in arrays.values())
    high = max(float(a.max()) for a in arrays.values())
    fig = Figure(figsize=(width, height_each * len(arrays)), layout="constrained")
    axes = fig.subplots(len(arrays), 1, squeeze=False)[:, 0]
    for ax, (name, mel) in zip(axes, arrays.items()):
        ax.imshow(mel, origin="lower", aspect="auto", cmap="magma", vmin=low, vmax=high,
                  extent=(0, mel.shape[-1] / frame_rate, 0, mel.shape[0]))
        ax.set_title(name, fontsize=10)
        ax.set_ylabel("mel band")
    axes[-1].set_xlabel("seconds")
    return fig


def figure_image(fig, dpi: int = 90) -> np.ndarray:
    """An RGB image (H, W, 3) of a matplotlib Figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    fig.set_dpi(dpi)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()

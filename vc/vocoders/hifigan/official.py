"""Import generator weights released with the official HiFi-GAN (github.com/jik876/hifi-gan).

A release is a generator file (`g_02500000`: a dict whose "generator" entry is the state dict)
and the `config.json` it was trained with. The file is read with `torch.load(weights_only=True)`
(no code is unpickled). Module names are the same here; only weight norm is stored differently:

    X.weight_g, X.weight_v  (torch.nn.utils.weight_norm)
        -> X.parametrizations.weight.original0, .original1  (torch.nn.utils.parametrizations)
    X.weight  (a checkpoint saved after remove_weight_norm)
        -> original1 = weight, original0 = its norm over every axis but the first

Their mels are natural-log magnitudes (floor 1e-5) of a Slaney mel filterbank, as ours, but
framed without centring: the signal is reflect-padded by (n_fft - hop) / 2 on each side, which
puts frame t at sample t*hop + hop/2 rather than t*hop. The imported model keeps our centred
framing, so its output is shifted by half a hop (a few milliseconds), which no listener hears.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ...errors import CheckpointError
from ...hub import load_legacy_state_dict
from ...mel import MelConfig
from .generator import HiFiGAN

ARCHITECTURE_KEYS = ("resblock", "upsample_rates", "upsample_kernel_sizes",
                     "upsample_initial_channel", "resblock_kernel_sizes", "resblock_dilation_sizes")
MEL_KEYS = ("sampling_rate", "n_fft", "hop_size", "win_size", "num_mels", "fmin", "fmax")


def official_mel_config(config: dict) -> MelConfig:
    return MelConfig(sample_rate=int(config["sampling_rate"]), n_fft=int(config["n_fft"]),
                     hop_length=int(config["hop_size"]), win_length=int(config["win_size"]),
                     n_mels=int(config["num_mels"]), fmin=float(config["fmin"]),
                     fmax=None if config["fmax"] is None else float(config["fmax"]),
                     power=1.0, compression="log", log_floor=1e-5)


def map_official_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an official generator state dict to our module layout."""
    mapped: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if key.endswith(".weight_g"):
            mapped[key[:-len(".weight_g")] + ".parametrizations.weight.original0"] = tensor
        elif key.endswith(".weight_v"):
            mapped[key[:-len(".weight_v")] + ".parametrizations.weight.original1"] = tensor
        elif key.endswith(".weight"):
            stem = key[:-len(".weight")]
            norm = tensor.flatten(1).norm(dim=1).reshape(-1, *([1] * (tensor.dim() - 1)))
            mapped[stem + ".parametrizations.weight.original0"] = norm
            mapped[stem + ".parametrizations.weight.original1"] = tensor
        else:
            mapped[key] = tensor
    return mapped


def import_official_hifigan(checkpoint: str | os.PathLike, config: str | os.PathLike | dict) -> HiFiGAN:
    """A `HiFiGAN` holding an official generator's weights (loaded strictly)."""
    if not isinstance(config, dict):
        path = Path(config)
        try:
            config = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise CheckpointError(f"could not read the HiFi-GAN config '{path}': {error}") from None
    missing = [k for k in ARCHITECTURE_KEYS + MEL_KEYS if k not in config]
    if missing:
        raise CheckpointError(f"the HiFi-GAN config lacks {missing}; give the config.json "
                              "released with the generator")
    model = HiFiGAN(mel=official_mel_config(config), resblock=str(config["resblock"]),
                    **{k: config[k] for k in ARCHITECTURE_KEYS if k != "resblock"})
    state = load_legacy_state_dict(checkpoint, key="generator")
    model.load_weights(map_official_state_dict(state), source=f"official HiFi-GAN generator '{checkpoint}'")
    return model.eval()

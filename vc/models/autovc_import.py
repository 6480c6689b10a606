"""Import the AutoVC weights released by the paper's authors into `AutoVC`.

The release (github.com/auspicious3000/autovc, `autovc.ckpt`) holds the state dict of their
`model_vc.Generator(dim_neck=32, dim_emb=256, dim_pre=512, freq=32)` under the key "model".
The file is read with `torch.load(weights_only=True)` (no code is unpickled) and every tensor
is renamed to our layout; the network is the same, so tensors are copied unchanged.

Their names, and what they become here:

    encoder.convolutions.{i}.0.conv.*      -> encoder.convs.{i}.conv.*      (Conv1d, k=5)
    encoder.convolutions.{i}.1.*           -> encoder.convs.{i}.norm.*      (BatchNorm1d)
    encoder.lstm.*                         -> encoder.lstm.*                (2-layer BiLSTM)
    decoder.lstm1.*                        -> decoder.input_lstm.*
    decoder.convolutions.{i}.{0.conv,1}.*  -> decoder.convs.{i}.{conv,norm}.*
    decoder.lstm2.*                        -> decoder.lstm.*                (2-layer LSTM)
    decoder.linear_projection.linear_layer.* -> decoder.proj.*
    postnet.convolutions.{i}.{0.conv,1}.*  -> postnet.layers.{i}.{conv,norm}.*

The official model reads 80-band mels made by their `make_spect.py` (`OFFICIAL_MEL`) directly,
with no further normalisation, and was trained on VCTK with embeddings from the authors' own
speaker encoder; GE2E embeddings from `vc.speaker` are a different embedding space, so expect
weak conversions with them (the release itself only supports its demo speakers).
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import torch

from ..errors import CheckpointError
from ..hub import load_legacy_state_dict
from ..mel import MelConfig
from .autovc import AutoVC

# make_spect.py: 16 kHz, Hann-windowed 1024-point STFT magnitude, hop 256, reflect padding,
# librosa's (Slaney) mel filterbank 90-7600 Hz with 80 bands, then
# clip((20·log10(max(1e-5, mel)) - 16 + 100) / 100, 0, 1).
# (It also high-passes the audio at 30 Hz and adds tiny noise before the STFT; not modelled.)
OFFICIAL_MEL = MelConfig(
    sample_rate=16000, n_fft=1024, hop_length=256, window="hann", n_mels=80, fmin=90.0,
    fmax=7600.0, power=1.0, center=True, pad_mode="reflect", mel_scale="slaney",
    mel_norm="slaney", compression="db", log_floor=1e-5, db_min=-100.0, db_ref=16.0)

# (official name pattern, our name template), matched with re.fullmatch.
_KEY_RULES = [
    (r"(encoder|decoder)\.convolutions\.(\d+)\.0\.conv\.(\w+)", r"\1.convs.\2.conv.\3"),
    (r"(encoder|decoder)\.convolutions\.(\d+)\.1\.(\w+)", r"\1.convs.\2.norm.\3"),
    (r"postnet\.convolutions\.(\d+)\.0\.conv\.(\w+)", r"postnet.layers.\1.conv.\2"),
    (r"postnet\.convolutions\.(\d+)\.1\.(\w+)", r"postnet.layers.\1.norm.\2"),
    (r"encoder\.lstm\.(\w+)", r"encoder.lstm.\1"),
    (r"decoder\.lstm1\.(\w+)", r"decoder.input_lstm.\1"),
    (r"decoder\.lstm2\.(\w+)", r"decoder.lstm.\1"),
    (r"decoder\.linear_projection\.linear_layer\.(\w+)", r"decoder.proj.\1"),
]
_BATCH_COUNTER = "num_batches_tracked"


def official_key_to_ours(name: str) -> str | None:
    """Our parameter name for an official Generator state-dict key; None if none fits."""
    for pattern, template in _KEY_RULES:
        match = re.fullmatch(pattern, name)
        if match:
            return match.expand(template)
    return None


def official_sizes(state: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """AutoVC constructor sizes read off the official tensors' shapes (freq is not stored)."""
    def shape(key: str) -> tuple[int, ...]:
        if key not in state:
            raise CheckpointError(f"not an official AutoVC Generator state dict: it has no {key!r}"
                                  f" (keys start {sorted(state)[:4]})")
        return tuple(state[key].shape)

    n_mels = shape("decoder.linear_projection.linear_layer.weight")[0]
    first_conv = shape("encoder.convolutions.0.0.conv.weight")  # (dim_conv, n_mels+dim_emb, 5)
    return dict(dim_neck=shape("encoder.lstm.weight_hh_l0")[1],
                dim_emb=first_conv[1] - n_mels,
                dim_pre=shape("decoder.lstm1.weight_hh_l0")[1],
                dim_conv=first_conv[0],
                dim_lstm=shape("decoder.lstm2.weight_hh_l0")[1],
                dim_postnet=shape("postnet.convolutions.0.0.conv.weight")[0],
                n_mels=n_mels)


def convert_official_state_dict(official: Mapping[str, torch.Tensor], model: AutoVC
                                ) -> dict[str, torch.Tensor]:
    """Rename an official Generator state dict to `model`'s names, strictly.

    Every official key must map to exactly one of our parameters or buffers and every one of
    ours must be filled; otherwise CheckpointError names the keys that did not fit. The one
    allowance is BatchNorm's `num_batches_tracked`, which PyTorch before 0.4.1 did not save:
    if the file has none at all they are set to 0, as PyTorch itself does for such files (the
    counter only matters when BatchNorm's momentum is None, which it is not here).
    """
    expected = model.state_dict()
    converted: dict[str, torch.Tensor] = {}
    unmapped, doubled = [], []
    for name, tensor in official.items():
        ours = official_key_to_ours(name)
        if ours is None or ours not in expected:
            unmapped.append(name)
        elif ours in converted:
            doubled.append(name)
        else:
            converted[ours] = tensor
    missing = [name for name in expected if name not in converted]
    if missing and not any(name.endswith(_BATCH_COUNTER) for name in official):
        for name in [m for m in missing if m.endswith(_BATCH_COUNTER)]:
            converted[name] = torch.zeros((), dtype=torch.long)
        missing = [m for m in missing if not m.endswith(_BATCH_COUNTER)]
    problems = [f"{label}: {', '.join(keys[:8])}{' ...' if len(keys) > 8 else ''}"
                for label, keys in (("official keys with no place in AutoVC", unmapped),
                                    ("official keys mapped twice", doubled),
                                    ("AutoVC weights the file does not provide", missing))
                if keys]
    if problems:
        raise CheckpointError("the checkpoint does not fit the official AutoVC Generator: "
                              + "; ".join(problems))
    return converted


def import_official_autovc(source: str | os.PathLike | Mapping[str, Any], *,
                           freq: int = 32) -> AutoVC:
    """An `AutoVC` (eval mode) holding the officially released weights.

    Args:
        source: the path of `autovc.ckpt` (its "model" entry is read), or a state dict with
            the official names (or a dict holding one under "model").
        freq: the code down-sampling the weights were trained with (32 for the release; the
            file does not record it).
    Raises:
        CheckpointError: the file cannot be read safely, or its tensors do not fit (the
            message names the keys or shapes).
    """
    if isinstance(source, Mapping):
        state = source["model"] if isinstance(source.get("model"), Mapping) else source
        label = "the given state dict"
    else:
        state = load_legacy_state_dict(source, key="model")
        label = os.fspath(source)
    sizes = official_sizes(state)
    n_mels = sizes.pop("n_mels")
    if n_mels != OFFICIAL_MEL.n_mels:
        raise CheckpointError(f"{label} predicts {n_mels} mel bands; the official AutoVC uses "
                              f"{OFFICIAL_MEL.n_mels}")
    model = AutoVC(**sizes, freq=freq, mel=OFFICIAL_MEL, mel_mean=0.0, mel_std=1.0)
    model.load_weights(convert_official_state_dict(state, model), source=label)
    return model.eval()

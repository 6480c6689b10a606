"""The on-disk model folder: file names, the config.json schema, weights I/O, atomic writes.

A model folder holds three files::

    config.json        {"model_type": ..., "format_version": 1, "voicelab_version": ...,
                        <every constructor argument, dataclasses as dicts>}
    model.safetensors  the state dict (tensors only, so loading never runs code)
    README.md          the model card (Hub YAML front matter + prose)

Only config.json and model.safetensors are needed to load; the card is for people and the Hub.
"""
from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from safetensors import SafetensorError

from ..errors import CheckpointError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
MODEL_FILES = (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME)

# Bump when a change to the folder layout or config schema means older voicelab cannot read it.
FORMAT_VERSION = 1
# config.json keys that are not constructor arguments.
RESERVED_KEYS = ("model_type", "format_version", "voicelab_version")

_REDOWNLOAD = "re-download the model, or re-save it with model.save_pretrained(folder)"


def voicelab_version() -> str:
    import vc  # the package's own version, so a source checkout reports itself correctly

    return str(getattr(vc, "__version__", "unknown"))


def to_jsonable(value: Any, where: str) -> Any:
    """`value` as plain JSON data: dataclasses become dicts, tuples become lists.

    Raises TypeError naming `where` for anything else (tensors, paths, callables ...), so a
    model whose arguments config.json cannot hold fails at save time, not at load time.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name), f"{where}.{f.name}")
                for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where} has a non-string key {key!r}; "
                                "config.json keys are strings")
            out[key] = to_jsonable(item, f"{where}[{key!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):  # also numpy integers
        return int(value)
    if isinstance(value, numbers.Real):
        if not math.isfinite(value):
            raise ValueError(f"{where} is {value}, which JSON cannot hold")
        return float(value)
    raise TypeError(
        f"{where} is a {type(value).__name__}, which config.json cannot hold; constructor "
        "arguments must be numbers, strings, bools, None, lists, dicts or dataclasses of those")


def read_config(folder: Path) -> dict[str, Any]:
    """Parse and check `folder/config.json`; CheckpointError says what is wrong and what to do."""
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(
            f"{folder} has no {CONFIG_NAME}; a voicelab model folder holds "
            f"{', '.join(MODEL_FILES)}. If a save was interrupted, {_REDOWNLOAD}.")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path} is not valid JSON ({error}); {_REDOWNLOAD}.") from error
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} must hold a JSON object, not {type(config).__name__}; "
                              f"{_REDOWNLOAD}.")
    model_type = config.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise CheckpointError(f"{path} has no 'model_type' string, so voicelab cannot tell which "
                              f"model it holds; {_REDOWNLOAD}.")
    version = config.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{path} has no valid 'format_version' (a positive integer), got "
                              f"{version!r}; {_REDOWNLOAD}.")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} uses checkpoint format {version} (written by voicelab "
            f"{config.get('voicelab_version', '?')}), but this voicelab ({voicelab_version()}) "
            f"reads formats up to {FORMAT_VERSION}; upgrade voicelab to load it.")
    return config


def read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """The state dict in `folder/model.safetensors`, on the CPU, every tensor checked finite."""
    path = Path(folder) / WEIGHTS_NAME
    if not path.is_file():
        raise CheckpointError(f"{folder} has no {WEIGHTS_NAME}; {_REDOWNLOAD}.")
    try:
        state = safetensors.torch.load_file(path, device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise CheckpointError(
            f"{path} is not a readable safetensors file ({error}); it is probably truncated or "
            f"corrupt: {_REDOWNLOAD}.") from error
    bad = non_finite_tensors(state)
    if bad:
        raise CheckpointError(
            f"{path} is damaged: {_some_names(bad)} hold{'s' if len(bad) == 1 else ''} NaN or "
            f"infinite values, so the model would output noise; {_REDOWNLOAD}.")
    return state


def non_finite_tensors(state: Any, prefix: str = "") -> list[str]:
    """Names of the floating-point tensors in `state` (a state dict, or nested dicts and
    lists of them, as optimizer states are) that hold a NaN or an infinity."""
    if isinstance(state, torch.Tensor):
        if not (state.is_floating_point() or state.is_complex()):
            return []  # integers cannot be NaN
        return [] if bool(torch.isfinite(state).all()) else [prefix or "tensor"]
    if isinstance(state, Mapping):
        items = ((f"{prefix}.{key}" if prefix else str(key), value) for key, value in state.items())
    elif isinstance(state, (list, tuple)):
        items = ((f"{prefix}[{i}]", value) for i, value in enumerate(state))
    else:
        return []
    return [name for key, value in items for name in non_finite_tensors(value, key)]


def _some_names(names: list[str], limit: int = 3) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more tensors" if len(names) > limit else "")


def describe_torch_load_error(error: BaseException) -> str:
    """Why `torch.load(weights_only=True)` refused a file, in a few words: the pickled
    Python object it would have had to run, or what is wrong with the file. PyTorch's advice
    to retry with weights_only=False (which runs whatever the file holds) is left out."""
    text = str(error)
    found = re.search(r"unsupported (?:GLOBAL|global:?) (?:GLOBAL )?([\w.]+)", text, re.IGNORECASE)
    if found:
        return f"it holds a pickled Python object ({found.group(1)}), which voicelab never runs"
    if re.search(r"Unsupported operand|invalid load key", text):
        return "it is not a PyTorch checkpoint (damaged, or another kind of file)"
    if "weights_only" in text or "Weights only load failed" in text:
        detail = re.search(r"WeightsUnpickler error:\s*([^\n]+)", text)
        return ("it holds pickled Python objects besides tensors, which voicelab never runs"
                + (f" ({detail.group(1).strip()})" if detail else ""))
    if isinstance(error, EOFError) or not text.strip():
        return "it ends early (truncated, or empty)"
    first = text.strip().splitlines()[0].split(". ")[0].rstrip(".")
    return f"{type(error).__name__}: {first}"


def plain_state_dict(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The module's state dict as CPU tensors that safetensors can write.

    safetensors refuses tensors that share memory (tied weights list one tensor under two
    names) or that are views into a larger buffer; those are cloned, everything else is kept
    as is so saving a large model does not double its memory.
    """
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, tensor in module.state_dict().items():
        tensor = tensor.detach().to("cpu")
        storage = tensor.untyped_storage()
        if (storage.data_ptr() in seen or not tensor.is_contiguous()
                or storage.nbytes() != tensor.numel() * tensor.element_size()):
            tensor = tensor.contiguous().clone()
        seen.add(tensor.untyped_storage().data_ptr())
        out[name] = tensor
    return out


def write_weights(state: Mapping[str, torch.Tensor], path: Path) -> None:
    safetensors.torch.save_file(dict(state), str(path), metadata={"format": "pt"})


def write_text(text: str) -> Callable[[Path], None]:
    return lambda path: path.write_text(text, encoding="utf-8")


def write_text_atomically(path: str | os.PathLike, text: str) -> Path:
    """Write one UTF-8 text file so a reader sees the old file or the new one, never half of
    either (bytes as given: no newline translation)."""
    path = Path(path)
    write_files_atomically(path.parent, {path.name: lambda temp: temp.write_bytes(text.encode("utf-8"))})
    return path


def write_files_atomically(folder: Path, writers: Mapping[str, Callable[[Path], None]],
                           *, guard: str | None = None) -> None:
    """Write several files into `folder` so that a crash never leaves a mix that loads.

    Every file is first written in full to a hidden temporary name in the same folder (same
    file system, so `os.replace` is atomic). Only then are they moved into place. If `guard`
    is given (config.json for a model folder) the old copy of that file is removed before any
    file is replaced and the new one is moved in last: while files are being swapped the
    folder has no config.json and refuses to load, instead of pairing old settings with new
    weights. Other files in the folder are left alone.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder, writers)
    staged: dict[str, Path] = {}
    try:
        for name, write in writers.items():
            temp = folder / f".{name}.{uuid.uuid4().hex[:12]}.tmp"
            staged[name] = temp
            # Created here with plain open() (not mkstemp), so it gets the usual umask
            # permissions; a writer that makes its own file (safetensors writes 0600) is
            # given them back.
            with open(temp, "wb"):
                pass
            mode = temp.stat().st_mode & 0o777
            write(temp)
            os.chmod(temp, mode)
            with open(temp, "rb") as handle:
                os.fsync(handle.fileno())
        order = [name for name in staged if name != guard]
        if guard in staged:
            (folder / guard).unlink(missing_ok=True)
            order.append(guard)
        for name in order:
            os.replace(staged[name], folder / name)
            del staged[name]
        _fsync_dir(folder)
    finally:
        for temp in staged.values():
            temp.unlink(missing_ok=True)


def remove_stale_temporaries(folder: Path, names: Iterable[str] | None = None, *,
                             older_than: float = 3600.0) -> list[Path]:
    """Remove the temporary files `write_files_atomically` leaves when it is killed mid-write
    (`.NAME.<id>.tmp`), for the given file names (None: any), once they have not been
    written to for `older_than` seconds (a live writer keeps touching its file). Returns the
    removed paths."""
    wanted = None if names is None else set(names)
    removed = []
    cutoff = time.time() - older_than
    for temp in Path(folder).glob(".*.tmp"):
        parts = temp.name[1:-len(".tmp")].rsplit(".", 1)
        if len(parts) != 2 or (wanted is not None and parts[0] not in wanted):
            continue
        try:
            if temp.is_file() and temp.stat().st_mtime <= cutoff:
                temp.unlink()
                removed.append(temp)
        except FileNotFoundError:  # another process cleaned it up first
            pass
    return removed


def _fsync_dir(folder: Path) -> None:
    # Makes the renames themselves durable; not possible on every platform (e.g. Windows).
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_LEGACY_CONTAINER_KEYS = ("state_dict", "model", "model_state_dict", "generator", "net")


def load_legacy_state_dict(path: str | os.PathLike, *,
                           key: str | None = None) -> dict[str, torch.Tensor]:
    """Read a state dict from an old PyTorch `.pt`/`.pth`/`.ckpt` file, without running its code.

    Uses `torch.load(weights_only=True)`, which only rebuilds tensors and plain containers
    and refuses pickled classes or functions. Many training scripts save
    `{"model": state_dict, "optimizer": ...}`; the state dict is taken from `key`, or else
    from the first of "state_dict", "model", "model_state_dict", "generator", "net" that
    holds one. A "module." prefix left by DataParallel is removed. Feed the result to
    `HubModel.load_weights`, then `save_pretrained` to get a safetensors folder.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"legacy checkpoint {path} does not exist")
    if path.stat().st_size == 0:
        raise CheckpointError(f"legacy checkpoint {path} is an empty file (0 bytes)")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, EOFError, ... here
        raise CheckpointError(
            f"could not read {path} as a weights-only PyTorch checkpoint: "
            f"{describe_torch_load_error(error)}. Either the file is damaged, or it holds "
            "more than tensors, which voicelab will not unpickle; where the file is trusted, "
            "re-save just the tensors: torch.save(model.state_dict(), path).") from None
    if key is not None:
        if not isinstance(data, Mapping) or key not in data:
            found = sorted(data) if isinstance(data, Mapping) else type(data).__name__
            raise CheckpointError(f"{path} has no entry {key!r}; it holds {found}")
        data = data[key]
    elif isinstance(data, Mapping) and not _is_state_dict(data):
        for candidate in _LEGACY_CONTAINER_KEYS:
            if _is_state_dict(data.get(candidate)):
                data = data[candidate]
                break
    if not _is_state_dict(data):
        found = sorted(map(str, data))[:8] if isinstance(data, Mapping) else type(data).__name__
        raise CheckpointError(
            f"{path} does not hold a state dict (name -> tensor); found {found}. Pass key=... to "
            "pick the entry that holds the weights.")
    state = dict(data)
    bad = non_finite_tensors(state)
    if bad:
        raise CheckpointError(f"{path} is damaged: {_some_names(bad)} "
                              f"hold{'s' if len(bad) == 1 else ''} NaN or infinite values")
    if all(name.startswith("module.") for name in state):
        state = {name[len("module."):]: tensor for name, tensor in state.items()}
    return state


def _is_state_dict(value: Any) -> bool:
    return (isinstance(value, Mapping) and len(value) > 0
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items()))

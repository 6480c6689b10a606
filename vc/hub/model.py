"""`HubModel`: the base class that lets every voicelab model save and load itself.

Subclass contract
-----------------
- Set a class attribute ``model_type = "autovc"``; defining it registers the class, so
  `load_model` can build whatever a folder holds. Intermediate base classes leave it unset.
- The constructor takes keyword-only arguments (``def __init__(self, *, dim=256, mel=None)``)
  and calls ``super().__init__()``. The base records the arguments as passed, with defaults
  filled in, in ``self.init_kwargs`` (captured in ``__new__``, so the subclass does nothing);
  they are written to config.json and passed back on load.
- Arguments must be JSON-able: numbers, strings, bools, None, lists, dicts, or dataclasses of
  those. A dataclass (e.g. `vc.mel.MelConfig`) is stored as a dict and comes back as a dict,
  so the constructor must accept either: ``self.mel = as_dataclass(MelConfig, mel)``.
  Tuples come back as lists.
- If the constructor fills in a derived value the config should pin (say ``mel=None`` means
  "today's default MelConfig"), it may store it: ``self.init_kwargs["mel"] = self.mel``.
- Optional class attributes: ``pipeline_tag`` (Hub task, e.g. "audio-to-audio") and
  ``card_tags`` (extra Hub tags) for the model card.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import os
import pkgutil
import tempfile
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from huggingface_hub import ModelCard
from torch import nn

from ..errors import CheckpointError
from .card import render_model_card
from .folder import (
    CARD_NAME, CONFIG_NAME, FORMAT_VERSION, RESERVED_KEYS, WEIGHTS_NAME, non_finite_tensors,
    plain_state_dict, read_config, read_weights, to_jsonable, voicelab_version,
    write_files_atomically, write_text, write_weights,
)
from .transport import push_to_hub as _push_folder
from .transport import resolve_model_dir

T = TypeVar("T")
M = TypeVar("M", bound="HubModel")
PathLike = str | os.PathLike
# A model card: markdown text, a huggingface_hub ModelCard, render_model_card fields, or None.
Card = str | ModelCard | Mapping[str, Any] | None

# model_type -> class. Filled by HubModel.__init_subclass__ as model modules are imported.
_REGISTRY: dict[str, type["HubModel"]] = {}
# Packages (or modules) whose modules define models; imported on demand when a config names an unknown
# model_type, so `load_model` works without the caller importing the right module first.
MODEL_PACKAGES = ("vc.models", "vc.vocoders", "vc.speaker")


class HubModel(nn.Module):
    """A torch module that saves to and loads from a self-describing folder or Hub repo."""

    model_type: ClassVar[str | None] = None
    pipeline_tag: ClassVar[str | None] = None
    card_tags: ClassVar[tuple[str, ...]] = ()
    #: named constructor settings, e.g. {"small": {...}, "paper": {...}}.
    presets: ClassVar[dict[str, dict[str, Any]]] = {}

    init_kwargs: dict[str, Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("model_type") is not None:
            _check_constructor(cls)
            _register(cls)

    def __new__(cls, *args: Any, **kwargs: Any):
        # Record the constructor arguments here rather than by wrapping __init__: __new__ sees
        # exactly what the caller passed to the most-derived class, once, whatever __init__
        # chain runs afterwards. (copy/pickle call __new__ with nothing and restore state.)
        self = super().__new__(cls)
        try:
            signature = inspect.Signature(list(_constructor_params(cls).values()))
            bound = signature.bind_partial(*args, **kwargs)
            bound.apply_defaults()
            recorded = dict(bound.arguments)
        except TypeError:
            recorded = dict(kwargs)  # __init__ will raise the real error
        object.__setattr__(self, "init_kwargs", recorded)
        return self

    @classmethod
    def from_preset(cls: type[M], name: str, **overrides: Any) -> M:
        """A fresh model built from a named preset, with any settings overridden."""
        if name not in cls.presets:
            raise ValueError(f"{cls.__name__} has no preset {name!r}; presets: {sorted(cls.presets)}")
        return cls(**{**cls.presets[name], **overrides})

    # ----------------------------------------------------------------- config
    def get_config(self) -> dict[str, Any]:
        """What config.json holds: model_type, format_version, voicelab_version and every
        constructor argument as plain JSON data (dataclasses as dicts)."""
        name = type(self).__name__
        if self.model_type is None:
            raise TypeError(f"{name} has no model_type; set `model_type = \"...\"` on the class")
        return {
            "model_type": self.model_type,
            "format_version": FORMAT_VERSION,
            "voicelab_version": voicelab_version(),
            **{key: to_jsonable(value, f"{name}({key}=...)")
               for key, value in self.init_kwargs.items()},
        }

    @classmethod
    def from_config(cls: type[M], config: Mapping[str, Any], *, source: str = "config") -> M:
        """Build a model (fresh weights) from a config as `get_config` returns it.

        On `HubModel` itself the class comes from the registry; on a subclass the config must
        be of that subclass's model_type. `source` names the config in error messages.
        """
        model_type = config.get("model_type")
        target = _class_for(cls, str(model_type), source)
        params = _constructor_params(target)
        args = {k: v for k, v in config.items() if k not in RESERVED_KEYS}
        unknown = [k for k in args if k not in params]
        if unknown:
            written_by, this = config.get("voicelab_version"), voicelab_version()
            if written_by is not None and str(written_by) != this:
                advice = (f"it was written by voicelab {written_by} and this is {this}: load it "
                          f"with voicelab {written_by}, or re-save it from there")
            else:
                advice = (f"this voicelab ({this}) wrote no such setting, so the file was "
                          "edited or made by a modified voicelab: remove the setting from "
                          "config.json, or re-save the model with save_pretrained")
            raise CheckpointError(
                f"{source} has settings {target.__name__} does not take: {_some(unknown)}; "
                f"{advice}.")
        missing = [k for k, p in params.items() if p.default is p.empty and k not in args]
        if missing:
            raise CheckpointError(f"{source} lacks required settings of {target.__name__}: "
                                  f"{_some(missing)}; re-save the model with save_pretrained.")
        try:
            return target(**args)
        except (TypeError, ValueError) as error:
            raise CheckpointError(f"{source}: building {target.__name__} from its settings failed: "
                                  f"{error}") from error

    # ---------------------------------------------------------------- weights
    def load_weights(self, state_dict: Mapping[str, torch.Tensor], *,
                     source: str = "state dict") -> None:
        """Load `state_dict` strictly: missing, unexpected or mis-shaped tensors are a
        CheckpointError that names them (no silent partial loads)."""
        expected = self.state_dict()
        missing = [k for k in expected if k not in state_dict]
        unexpected = [k for k in state_dict if k not in expected]
        wrong = [f"{k} {tuple(state_dict[k].shape)} (model has {tuple(expected[k].shape)})"
                 for k in expected if k in state_dict and state_dict[k].shape != expected[k].shape]
        problems = [f"{label}: {_some(keys)}" for label, keys in
                    (("missing keys", missing), ("unexpected keys", unexpected),
                     ("wrong shapes", wrong)) if keys]
        if problems:
            raise CheckpointError(
                f"{source} does not fit {type(self).__name__}: " + "; ".join(problems)
                + ". The weights belong to a different model or settings than config.json "
                "describes; re-save them from the model that produced them.")
        self.load_state_dict(dict(state_dict), strict=True)

    # ------------------------------------------------------------- save / load
    def save_pretrained(self, folder: PathLike, card: Card = None, dtype: torch.dtype | None = None) -> Path:
        """Write config.json, model.safetensors and README.md into `folder`; returns it.

        The write is atomic per folder: everything is staged under temporary names first, and
        config.json is swapped in last, so a crash leaves either the old model, the new one,
        or a folder that refuses to load, never a mix. Other files in `folder` are kept.

        Args:
            card: the model card: markdown text (e.g. from `render_model_card`), a
                huggingface_hub `ModelCard`, or a dict of `render_model_card` fields
                (model_type, pipeline_tag and class tags are filled in). None writes a
                basic card from the class docstring.
            dtype: store floating-point weights in this type (e.g. torch.float16 halves the
                file); loading casts them back to the model's own type.
        """
        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise ValueError(f"dtype must be a floating-point torch dtype such as torch.float16, got {dtype!r}")
        config_text = json.dumps(self.get_config(), indent=2, allow_nan=False) + "\n"
        card_text = self._card_text(card)
        state = plain_state_dict(self)
        if dtype is not None:
            state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
        bad = non_finite_tensors(state)
        if bad:
            raise CheckpointError(
                f"refusing to save {type(self).__name__} to {folder}: {_some(bad)} "
                f"hold{'s' if len(bad) == 1 else ''} NaN or infinite values (training diverged, or the weights were damaged); save from "
                "an earlier, finite state")
        folder = Path(folder)
        write_files_atomically(folder, {
            WEIGHTS_NAME: lambda path: write_weights(state, path),
            CARD_NAME: write_text(card_text),
            CONFIG_NAME: write_text(config_text),
        }, guard=CONFIG_NAME)
        return folder

    def _card_text(self, card: Card) -> str:
        if card is None or isinstance(card, Mapping):
            fields = dict(card or {})
            fields.setdefault("model_type", self.model_type)
            fields.setdefault("description", _summary(type(self)))
            fields.setdefault("pipeline_tag", self.pipeline_tag)
            fields["tags"] = [*self.card_tags, *(fields.get("tags") or ())]
            return render_model_card(**fields)
        text = str(card)
        try:
            ModelCard(text)  # a card whose front matter the Hub cannot parse is not written
        except ValueError as error:
            raise ValueError(f"the model card's YAML front matter is invalid: {error}") from error
        return text

    @classmethod
    def from_pretrained(cls: type[M], name: PathLike, revision: str | None = None,
                        device: str | torch.device = "cpu", cache_dir: PathLike | None = None,
                        *, token: str | bool | None = None) -> M:
        """Load a model from a local folder, a `checkpoints/` name, or a Hub repo id.

        `name` is resolved as `resolve_model_dir` describes ("owner/name@rev" pins a
        revision, as does `revision`). Called on a subclass, the folder must hold that
        model_type; called on `HubModel` (or via `load_model`) any registered type loads.
        The model comes back on `device`, in eval mode.

        Raises:
            ModelNotFoundError: nothing found under `name` (the message lists what was tried).
            CheckpointError: the folder's files are missing, corrupt or do not fit the model.
        """
        from ..devices import check_device
        device = check_device(device)
        folder = resolve_model_dir(name, revision, cache_dir=cache_dir, token=token)
        config = read_config(folder)
        model = cls.from_config(config, source=str(folder / CONFIG_NAME))
        model.load_weights(read_weights(folder), source=str(folder / WEIGHTS_NAME))
        return model.to(device).eval()

    def push_to_hub(self, repo_id: str, *, card: Card = None, token: str | None = None,
                    private: bool = False, commit_message: str | None = None,
                    revision: str | None = None) -> str:
        """Save to a temporary folder and publish it as `vc.hub.push_to_hub` does; returns the
        commit URL."""
        if isinstance(card, Mapping):
            card = {"repo_id": repo_id, **card}
        elif card is None:
            card = {"repo_id": repo_id}
        with tempfile.TemporaryDirectory(prefix="voicelab-push-") as temp:
            folder = self.save_pretrained(Path(temp) / "model", card=card)
            return _push_folder(folder, repo_id, token=token, private=private,
                                commit_message=commit_message, revision=revision)


def load_model(name: PathLike, revision: str | None = None, device: str | torch.device = "cpu",
               cache_dir: PathLike | None = None, *, token: str | bool | None = None) -> HubModel:
    """Load whatever model `name` holds (see `HubModel.from_pretrained`)."""
    return HubModel.from_pretrained(name, revision, device, cache_dir, token=token)


def load_config(name: PathLike, revision: str | None = None, *, cache_dir: PathLike | None = None,
                token: str | bool | None = None) -> dict[str, Any]:
    """The checked config.json of model `name`, without loading (or downloading) its weights;
    e.g. to read its "mel" settings or sample rate."""
    folder = resolve_model_dir(name, revision, cache_dir=cache_dir, token=token,
                               files=(CONFIG_NAME,))
    return read_config(folder)


def as_dataclass(cls: type[T], value: T | Mapping[str, Any] | None) -> T:
    """`value` as an instance of dataclass `cls`: an instance is returned as is, a dict (as
    config.json stores it) is converted, None gives the defaults. Unknown keys are an error;
    nested dataclass fields given as dicts are converted too."""
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if not isinstance(value, Mapping):
        raise TypeError(f"expected a {cls.__name__} or a dict of its fields, "
                        f"got {type(value).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {unknown}; "
                         f"its fields are {sorted(fields)}")
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # unresolvable annotations: skip nested conversion rather than fail
        hints = {}
    converted = {}
    for key, item in value.items():
        hint = hints.get(key)
        if isinstance(hint, type) and dataclasses.is_dataclass(hint) and isinstance(item, Mapping):
            item = as_dataclass(hint, item)
        converted[key] = item
    return cls(**converted)


def registered_model_types() -> list[str]:
    """Every model_type that can be loaded now (importing the model packages first)."""
    _import_model_packages()
    return sorted(_REGISTRY)


def model_class(model_type: str) -> type[HubModel]:
    """The class registered for `model_type`; CheckpointError listing the known ones if none."""
    return _lookup(model_type, source=f"model_type {model_type!r}")


# ------------------------------------------------------------------ internals
def _register(cls: type[HubModel]) -> None:
    existing = _REGISTRY.get(cls.model_type)
    # The same class defined again (module reloaded) replaces itself; a different one is a bug.
    same = existing is not None and (existing.__module__, existing.__qualname__) == (
        cls.__module__, cls.__qualname__)
    if existing is not None and not same:
        raise TypeError(f"model_type {cls.model_type!r} of {cls.__module__}.{cls.__qualname__} is "
                        f"already used by {existing.__module__}.{existing.__qualname__}")
    _REGISTRY[cls.model_type] = cls


def _check_constructor(cls: type[HubModel]) -> None:
    for name, param in _constructor_params(cls).items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"{cls.__name__}.__init__ may not take *{name} or **{name}: "
                            "config.json must name every argument; list them as keyword-only")
        if param.kind is not param.KEYWORD_ONLY:
            raise TypeError(
                f"{cls.__name__}.__init__ must take keyword-only arguments so config.json can name "
                f"them (def __init__(self, *, {name}=...)); {name!r} is {param.kind.description}")
        if name in RESERVED_KEYS:
            raise TypeError(f"{cls.__name__}.__init__ may not take an argument named {name!r}: "
                            "config.json uses that key itself")


def _constructor_params(cls: type) -> dict[str, inspect.Parameter]:
    """The constructor's parameters without `self` (none if the model has no __init__)."""
    if cls.__init__ is nn.Module.__init__:
        return {}
    return dict(list(inspect.signature(cls.__init__).parameters.items())[1:])


def _class_for(cls: type[HubModel], model_type: str, source: str) -> type[HubModel]:
    if cls.model_type is not None:
        if model_type != cls.model_type:
            raise CheckpointError(
                f"{source} holds a {model_type!r} model, but {cls.__name__}.from_pretrained "
                f"loads {cls.model_type!r} models; use vc.hub.load_model to load whatever a "
                "folder holds.")
        return cls
    target = _lookup(model_type, source)
    if not issubclass(target, cls):
        raise CheckpointError(f"{source} holds a {model_type!r} model ({target.__name__}), which "
                              f"is not a {cls.__name__}; use vc.hub.load_model or "
                              f"{target.__name__}.")
    return target


def _lookup(model_type: str, source: str) -> type[HubModel]:
    failures = [] if model_type in _REGISTRY else _import_model_packages()
    if model_type in _REGISTRY:
        return _REGISTRY[model_type]
    known = ", ".join(sorted(_REGISTRY)) or "none"
    note = f" (some model modules failed to import: {'; '.join(failures)})" if failures else ""
    raise CheckpointError(f"{source}: unknown model_type {model_type!r}; known types: "
                          f"{known}{note}. It may need a newer voicelab, or importing the module "
                          "that defines it.")


def _import_model_packages() -> list[str]:
    """Import every module of MODEL_PACKAGES so their models register; returns failures."""
    failures = []
    for package_name in MODEL_PACKAGES:
        try:
            package = importlib.import_module(package_name)
        except ImportError as error:
            failures.append(f"{package_name}: {error}")
            continue
        for info in pkgutil.iter_modules(getattr(package, "__path__", [])):
            if not info.name.startswith("_"):
                try:
                    importlib.import_module(f"{package_name}.{info.name}")
                except ImportError as error:
                    failures.append(f"{package_name}.{info.name}: {error}")
    return failures


def _some(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _summary(cls: type) -> str:
    """First paragraph of the class's own docstring (not an inherited one)."""
    doc = cls.__dict__.get("__doc__")
    return inspect.cleandoc(doc).split("\n\n")[0] if doc else ""

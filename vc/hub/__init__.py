"""Saving, loading and publishing voicelab models.

Every model is a `HubModel` subclass with a `model_type`; a saved model is a folder (local or
a Hugging Face Hub repo) with config.json, model.safetensors and a README.md model card::

    model.save_pretrained("runs/autovc-small", card={"datasets": [...], "training": {...}})
    model = load_model("runs/autovc-small")          # or a checkpoints/ name, or "owner/repo@rev"
    push_to_hub("runs/autovc-small", "owner/autovc-small")
    update_model_card_metrics("runs/autovc-small", {"dataset": "vctk", "metrics": [...]})

See `vc.hub.model` for the subclass contract and `vc.hub.folder` for the file format.
"""
from .card import eval_results, render_model_card, update_model_card_metrics, write_model_card
from .folder import (
    CARD_NAME, CONFIG_NAME, FORMAT_VERSION, MODEL_FILES, WEIGHTS_NAME, describe_torch_load_error,
    load_legacy_state_dict, non_finite_tensors, remove_stale_temporaries, write_files_atomically,
    write_text_atomically,
)
from .model import (
    HubModel, as_dataclass, load_config, load_model, model_class, registered_model_types,
)
from .transport import checkpoints_dir, is_hub_offline, push_to_hub, resolve_model_dir

__all__ = [
    "HubModel", "load_model", "load_config", "as_dataclass", "model_class",
    "registered_model_types",
    "push_to_hub", "resolve_model_dir", "checkpoints_dir", "is_hub_offline",
    "render_model_card", "write_model_card", "update_model_card_metrics", "eval_results",
    "load_legacy_state_dict", "write_files_atomically", "write_text_atomically",
    "non_finite_tensors", "describe_torch_load_error", "remove_stale_temporaries",
    "CONFIG_NAME", "WEIGHTS_NAME", "CARD_NAME", "MODEL_FILES",
    "FORMAT_VERSION",
]

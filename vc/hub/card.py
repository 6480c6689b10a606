"""Model cards: README.md with Hub YAML front matter, written by training and updated by eval.

The front matter uses huggingface_hub's `ModelCardData`/`EvalResult`, so the Hub shows the
licence, datasets and a `model-index` of evaluation results; the body says the same in prose
and a table. Evaluation results are given as blocks like::

    {"dataset": "vctk-heldout",            # or {"type": ..., "name": ..., "split": ...}
     "task": {"type": "audio-to-audio"},   # optional; default from the model's pipeline tag
     "metrics": [{"type": "wer", "value": 0.12, "name": "WER of converted speech"}]}
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .folder import CARD_NAME, write_files_atomically, write_text

LIBRARY_NAME = "voicelab"
DEFAULT_TASK = "audio-to-audio"
# The evaluation table in the body sits between these, so updates can replace it in place.
_EVAL_START = "<!-- voicelab:evaluation:start -->"
_EVAL_END = "<!-- voicelab:evaluation:end -->"

Metrics = Mapping[str, Any] | Sequence[Mapping[str, Any]]


def render_model_card(
    *,
    model_type: str,
    description: str = "",
    datasets: Iterable[str] = (),
    license: str | None = "mit",
    training: Mapping[str, Any] | None = None,
    metrics: Metrics | None = None,
    tags: Iterable[str] = (),
    pipeline_tag: str | None = None,
    model_name: str | None = None,
    repo_id: str | None = None,
) -> str:
    """The text of a README.md model card.

    Args:
        model_type: the model's registered type (e.g. "autovc"); also a tag.
        description: a paragraph or more on what the model is and is for.
        datasets: what it was trained on (Hub dataset ids where they exist, else names).
        license: licence of the weights (Hub licence id).
        training: what training code wants recorded: steps, batch size, config, time ...
        metrics: evaluation results (see the module docstring); become the `model-index`.
        tags: extra Hub tags.
        pipeline_tag: Hub task, e.g. "audio-to-audio" or "text-to-speech".
        model_name: title and model-index name (default: model_type).
        repo_id: shown in the usage snippet (default: a placeholder).
    """
    name = model_name or model_type
    results = eval_results(metrics, default_task=pipeline_tag or DEFAULT_TASK)
    data = ModelCardData(
        library_name=LIBRARY_NAME,
        license=license,
        tags=_unique([LIBRARY_NAME, model_type, *tags]),
        datasets=list(datasets) or None,
        pipeline_tag=pipeline_tag,
        # model_name only matters inside model-index; without results it would be a stray key.
        model_name=name if results else None,
        eval_results=results or None,
    )
    body = [
        f"# {name}",
        "",
        description.strip() or f"A voicelab `{model_type}` model.",
        "",
        "## Usage",
        "",
        "```python",
        "from vc.hub import load_model",
        "",
        "# a Hub repo id, a local folder or a name under checkpoints/",
        f'model = load_model("{repo_id or "OWNER/REPO"}")',
        "```",
        "",
        "## Training data",
        "",
        *([f"- {d}" for d in data.datasets] if data.datasets else ["Not recorded."]),
        "",
        "## Training",
        "",
        *_training_section(training),
        "",
        "## Evaluation",
        "",
        _eval_block(results),
        "",
        "## License",
        "",
        f"{license or 'Not stated.'}",
        "",
    ]
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body))
    return str(card)


def write_model_card(folder: str | Path, **fields: Any) -> Path:
    """Write `folder/README.md` (atomically) from the fields of `render_model_card`."""
    path = Path(folder) / CARD_NAME
    write_files_atomically(path.parent, {CARD_NAME: write_text(render_model_card(**fields))})
    return path


def update_model_card_metrics(folder: str | Path, metrics: Metrics, *,
                              model_name: str | None = None) -> Path:
    """Add or replace evaluation results in `folder/README.md`.

    A result replaces an existing one with the same task, dataset (type, config, split,
    revision) and metric type; others are appended. Both the `model-index` and the body's
    evaluation table are rewritten; the rest of the card is kept.
    """
    path = Path(folder) / CARD_NAME
    if path.is_file():
        card = ModelCard(path.read_text(encoding="utf-8"))
    else:
        from .folder import read_config  # a card-less folder still says what it holds

        model_type = read_config(Path(folder))["model_type"]
        card = ModelCard(render_model_card(model_type=model_type, model_name=model_name))
    default_task = card.data.get("pipeline_tag") or DEFAULT_TASK
    merged = list(card.data.eval_results or [])
    for new in eval_results(metrics, default_task=default_task):
        key = _result_key(new)
        merged = [old for old in merged if _result_key(old) != key] + [new]
    card.data.eval_results = merged
    card.data.model_name = model_name or card.data.model_name or _title(card.text) or "model"
    card.text = _replace_eval_block(card.text, merged)
    write_files_atomically(path.parent, {CARD_NAME: write_text(str(card))})
    return path


def eval_results(metrics: Metrics | None, *, default_task: str = DEFAULT_TASK) -> list[EvalResult]:
    """Evaluation blocks (see module docstring) as huggingface_hub `EvalResult`s."""
    if not metrics:
        return []
    blocks = [metrics] if isinstance(metrics, Mapping) else list(metrics)
    results = []
    for i, block in enumerate(blocks):
        try:
            dataset = block["dataset"]
            if isinstance(dataset, str):
                dataset = {"type": dataset, "name": dataset}
            task = block.get("task") or {"type": default_task}
            for metric in block["metrics"]:
                results.append(EvalResult(
                    task_type=task["type"], task_name=task.get("name"),
                    dataset_type=dataset["type"], dataset_name=dataset.get("name", dataset["type"]),
                    dataset_split=dataset.get("split"), dataset_config=dataset.get("config"),
                    dataset_revision=dataset.get("revision"),
                    metric_type=metric["type"], metric_value=_plain_number(metric["value"]),
                    metric_name=metric.get("name"), metric_config=metric.get("config"),
                    metric_args=metric.get("args"),
                ))
        except (KeyError, TypeError) as error:
            raise ValueError(
                f"evaluation block {i} is missing {error}; expected "
                "{'dataset': 'name' or {'type': ..., 'name': ...}, "
                "'metrics': [{'type': 'wer', 'value': 0.1}]}") from error
    return results


def _plain_number(value: Any) -> Any:
    # numpy / torch scalars would not survive the YAML dump as numbers.
    return value.item() if hasattr(value, "item") else value


def _result_key(result: EvalResult) -> tuple:
    return (*result.unique_identifier, result.metric_type, result.metric_config)


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(item for item in items if item))


def _training_section(training: Mapping[str, Any] | None) -> list[str]:
    if not training:
        return ["Not recorded."]
    scalars = {k: v for k, v in training.items() if not isinstance(v, (Mapping, list, tuple))}
    nested = {k: v for k, v in training.items() if k not in scalars}
    lines = []
    if scalars:
        lines += ["| setting | value |", "|---|---|"]
        lines += [f"| {k} | {_cell(v)} |" for k, v in scalars.items()]
    for key, value in nested.items():
        lines += ["", f"{key}:", "", "```json", json.dumps(value, indent=2, default=str), "```"]
    return lines


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _eval_block(results: list[EvalResult]) -> str:
    if results:
        rows = ["| dataset | split | metric | value |", "|---|---|---|---|"]
        rows += [f"| {_cell(r.dataset_name)} | {_cell(r.dataset_split or '')} | "
                 f"{_cell(r.metric_name or r.metric_type)} | {_cell(r.metric_value)} |"
                 for r in results]
        table = "\n".join(rows)
    else:
        table = "No evaluation results yet."
    return f"{_EVAL_START}\n{table}\n{_EVAL_END}"


def _replace_eval_block(text: str, results: list[EvalResult]) -> str:
    start, end = text.find(_EVAL_START), text.find(_EVAL_END)
    if start != -1 and end > start:
        return text[:start] + _eval_block(results) + text[end + len(_EVAL_END):]
    return text.rstrip("\n") + "\n\n## Evaluation\n\n" + _eval_block(results) + "\n"


def _title(text: str) -> str | None:
    for line in text.splitlines():
        if line.startswith("# "):
            return line[2:].strip() or None
    return None

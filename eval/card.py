"""Write a model's evaluation figures into its model card (Hub `model-index` metadata).

    python -m eval card --report runs/eval --model vqvc-small

The dataset of the results is the protocol (its file name, corpora and trial count); each
metric carries its 95% interval and trial count as arguments, so the card says how sure the
figure is. A card updated twice from the same protocol keeps one result per metric.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from huggingface_hub.constants import HF_HUB_CACHE

from vc.errors import VoicelabError
from vc.hub import resolve_model_dir, update_model_card_metrics
from vc.pipeline import resolve_run_folder


class CardError(VoicelabError, ValueError):
    """The report or the model cannot be used to update a card."""


def read_report(where: str | os.PathLike) -> dict:
    """report.json from an evaluation folder (or the file itself)."""
    path = Path(where)
    if path.is_dir():
        path = path / "report.json"
    if not path.is_file():
        raise CardError(f"no report at {path}; run `python -m eval run ... --out DIR` first")
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise CardError(f"{path} is not a readable report ({err})") from None
    if report.get("format") != "voicelab-eval-report":
        raise CardError(f"{path} is not a voicelab evaluation report")
    return report


def card_results(report: dict, model: str) -> tuple[dict, dict]:
    """(the report's entry for `model`, the evaluation block for `update_model_card_metrics`)."""
    entries = [s for s in report["systems"] if s["kind"] == "model"]
    matches = [s for s in entries if s["name"] == model] or [s for s in entries if s.get("model") == model]
    if not matches:
        names = ", ".join(s["name"] for s in entries) or "none"
        raise CardError(f"the report has no model {model!r}; its models: {names}")
    if len(matches) > 1:
        raise CardError(f"{model!r} was evaluated with several vocoders "
                        f"({', '.join(s['name'] for s in matches)}); name one of them")
    entry = matches[0]
    protocol = report["protocol"]
    meta = protocol.get("metadata", {})
    stem = Path(protocol["path"]).stem
    corpora = ", ".join(meta.get("corpus_names") or []) or "unknown corpora"
    info = report.get("metric_info", {})
    metrics = []
    for name, figure in entry["metrics"].items():
        if figure.get("value") is None:
            continue
        args = {"n": figure["n"], "vocoder": entry.get("vocoder")}
        if figure.get("ci95"):
            args["ci95"] = [round(x, 4) for x in figure["ci95"]]
        if name in ("wer", "cer") and report.get("asr"):
            args["asr"] = report["asr"]
        metrics.append({"type": name, "value": round(float(figure["value"]), 4),
                        "name": info.get(name, {}).get("label", name), "args": args})
    if not metrics:
        raise CardError(f"the report has no figures for {entry['name']}: every trial failed or was not run")
    block = {"dataset": {"type": f"voicelab-protocol/{stem}", "name": f"{stem} ({corpora}, "
                         f"{protocol['trials']} trials)", "split": "test",
                         "config": meta.get("builder")},
             "metrics": metrics}
    return entry, block


def write_card(report_dir: str | os.PathLike, model: str, folder: str | os.PathLike | None = None) -> Path:
    """Update the model card in `folder` (default: the model's local folder) from the report."""
    report = read_report(report_dir)
    entry, block = card_results(report, model)
    if folder is None:
        spec = entry.get("model") or model
        folder = resolve_model_dir(resolve_run_folder(spec))
        if Path(folder).resolve().is_relative_to(Path(HF_HUB_CACHE).resolve()):
            raise CardError(f"{spec} was loaded from the Hugging Face cache; pass --folder with a local "
                            "copy of the repo to update, then push it")
    return update_model_card_metrics(folder, block, model_name=Path(entry.get("model") or model).name)

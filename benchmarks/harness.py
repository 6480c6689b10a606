"""The evaluation harness's throughput: trials per minute of `eval.report.evaluate` (what
`python -m eval run` does) with the full metric set, ABX off and on.

A protocol of held-out real speech (`build_real_speech_protocol`, seed 0) is run on the
registry's default chain; each trial converts with the model and the baselines every report
carries (source, target ceiling, resynthesis through each vocoder) and scores every output
with GE2E similarity, Whisper-base WER/CER (pocketsphinx where Whisper's weights are absent),
DNSMOS, MCD and F0. "ABX on" adds the set-level ABX and bitrate figures, which need phone
alignments of the held-out speakers (`--alignments`, default data/aligned/heldout.jsonl, as
`python -m vc.data align` writes it). Each setting runs in a fresh output folder, so nothing is
reused; the models, Whisper and DNSMOS are loaded inside the timing, as in a real run.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

from .common import REPO, BenchmarkError, Settings, Speech

DEFAULT_ALIGNMENTS = REPO / "data" / "aligned" / "heldout.jsonl"
SET_LEVEL = ("abx_within", "abx_across", "bitrate")


def system_name(settings: Settings) -> str:
    """The registry's default chain as `eval run` names it (MODEL+VOCODER)."""
    from vc.registry import ModelRegistry

    registry = ModelRegistry.from_file(settings.registry)
    model = registry.converters[registry.default_converter].source
    vocoder = registry.vocoders[registry.default_vocoder].source
    return f"{model}+{vocoder}"


def run(settings: Settings, speech: Speech, reference: dict, progress) -> dict:
    from eval.asr import default_asr
    from eval.protocol import build_real_speech_protocol
    from eval.report import evaluate
    from eval.scoring import METRICS

    import eval.naturalness  # noqa: F401 - imports are not what is measured
    import eval.runner  # noqa: F401

    system = system_name(settings)
    folder = settings.work / "eval"
    folder.mkdir(parents=True, exist_ok=True)
    protocol = build_real_speech_protocol(speech.root, settings.eval_trials, seed=0, references_per_target=2)
    alignments = settings.alignments or (DEFAULT_ALIGNMENTS if DEFAULT_ALIGNMENTS.is_file() else None)
    if settings.alignments is not None and not Path(settings.alignments).is_file():
        raise BenchmarkError(f"--alignments {settings.alignments} does not exist; write it with "
                             "python -m vc.data align")
    if alignments is not None:
        protocol.metadata["alignments"] = str(Path(alignments).resolve())
    protocol_path = protocol.save(folder / "protocol.json")
    asr, _ = default_asr()
    progress("eval: warming Whisper and DNSMOS")
    _warm(asr)
    result = {"system": system, "trials": len(protocol), "asr": asr, "naturalness": "dnsmos",
              "protocol": f"{len(protocol)} trial(s) of build_real_speech_protocol (seed 0) over {speech.root}",
              "alignments": str(alignments) if alignments else None, "settings": {}}
    for abx in (False, True):
        label = "abx_on" if abx else "abx_off"
        if abx and alignments is None:
            result["settings"][label] = {"skipped": f"no phone alignments of the held-out speakers at "
                                                    f"{DEFAULT_ALIGNMENTS} (python -m vc.data align, or --alignments)"}
            continue
        progress(f"eval, ABX {'on' if abx else 'off'}")
        out = folder / label
        shutil.rmtree(out, ignore_errors=True)
        metrics = list(METRICS) if abx else [m for m in METRICS if m not in SET_LEVEL]
        start = time.perf_counter()
        report = evaluate(protocol_path, [system], out, asr="auto", naturalness="dnsmos", metrics=metrics,
                          device=settings.device, examples=0, show_progress=False)
        wall = time.perf_counter() - start
        rows = [r for r in report["trials"] if r["status"] == "ok"]
        per_trial = sum(r["seconds"] + r.get("score_seconds", 0.0) for r in rows) / max(1, len(protocol))
        ours = next((s for s in report["systems"] if s["name"] == system), {})
        result["settings"][label] = {
            "wall_seconds": wall, "trials_per_minute": 60.0 * len(protocol) / wall,
            "seconds_per_trial_running": per_trial,
            "trials_per_minute_running": 60.0 / per_trial if per_trial > 0 else None,
            "fixed_seconds": wall - per_trial * len(protocol),
            "systems": len(report["systems"]), "outputs_scored": len(rows), "failed": report["run"]["failed"],
            "metrics": sorted(k for k in ours.get("metrics", {}) if k in METRICS), "notes": report["notes"]}
    return result


def _warm(asr: str) -> None:
    """Load the recogniser and DNSMOS once untimed, so their files are in the page cache and
    their libraries initialised for both settings alike (otherwise the first setting pays it)."""
    from eval.asr import load_recogniser
    from eval.naturalness import DnsMos

    load_recogniser(asr)
    DnsMos(threads=1)

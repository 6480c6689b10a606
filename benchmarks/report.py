"""results.json (every figure) and results.md (the tables) of a benchmark run.

    python -m benchmarks.report benchmarks/results.json    # render results.md again from the figures
"""
from __future__ import annotations

import json
import os
from pathlib import Path

FORMAT = "voicelab-benchmarks"
VERSION = 1
STAGES = ("decode", "speaker", "transcript", "conversion", "vocoder")


def write(results: dict, out: Path) -> tuple[Path, Path]:
    from vc.hub import write_text_atomically

    json_path = write_text_atomically(out / "results.json", json.dumps(results, indent=1) + "\n")
    md_path = write_text_atomically(out / "results.md", render(results))
    return md_path, json_path


def _f(value, digits: int = 1, suffix: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, (int, float)) and abs(value) >= 1000 and digits <= 1:
        return f"{value:,.0f}{suffix}"
    return f"{value:.{digits}f}{suffix}"


def _speed(row: dict, digits: int = 1) -> str:
    """A speed, marked † when its repeats were further apart than UNSTEADY (disturbed by load)."""
    from .common import UNSTEADY

    spread = (row.get("timing") or {}).get("spread", 1.0)
    return _f(row["speed"], digits) + (" †" if spread > UNSTEADY else "")


def _pct(value) -> str:
    return "–" if value is None else f"{100 * value:.0f} %"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *["| " + " | ".join(r) + " |" for r in rows], ""]


def render(results: dict) -> str:
    m, ref = results["machine"], results["reference"]
    load = m.get("load_average_start")
    lines = ["# voicelab benchmarks", "",
             f"`{results['command']}` on {m['date']}: {m['cpu']}, {m['cores']} cores, "
             f"{m['threads']} torch thread(s), {m['device']}. Written by `python -m benchmarks` "
             "(see `python -m benchmarks --help`); every figure is also in `results.json`.", ""]
    machine_rows = [["date (UTC)", m["date"]], ["platform", m["platform"]],
                    ["CPU", f"{m['cpu']}; {m['cores']} cores ({m['usable_cores']} usable)"],
                    ["threads used", f"{m['threads']} (torch, OpenMP, onnxruntime, CTranslate2)"],
                    ["memory", f"{m['memory_gib']} GiB" if m.get("memory_gib") else "–"],
                    ["device", m["device"] + (f" ({m['gpu']}, CUDA {m['cuda']})" if m.get("gpu") else "")],
                    ["versions", f"Python {m['python']}, torch {m['torch']}, numpy {m['numpy']}, "
                                 f"voicelab {m['voicelab']}"],
                    ["load average at start (1, 5, 15 min)", ", ".join(map(str, load)) if load else "–"],
                    ["load average at the end", ", ".join(map(str, m.get("load_average_end") or [])) or "–"],
                    ["1-minute load average as each section began",
                     ", ".join(f"{k} {v[0]:g}" for k, v in results.get("load_by_section", {}).items() if v) or "–"],
                    ["CPU busy in the second before the start", f"{m['cpu_busy_percent_start']:.0f} %"],
                    ["other processes busy then (% of one core)",
                     "; ".join(f"{o['command']} ({o['cpu_percent']:.0f} %)" for o in m.get("other_processes", []))
                     or "none"],
                    ["other load present", "yes: figures are lower than on an idle machine"
                     if m["other_load"] else "no"],
                    ["run took", f"{results['seconds']:.0f} s"]]
    lines += ["## Machine", "", *_table(["", ""], machine_rows)]
    by_section = ref.get("by_section", {})
    again = ", ".join(f"{k} {_f(v)}" for k, v in by_section.items())
    lines += [f"**Reference** (measured in this run): Griffin-Lim with 32 iterations turns "
              f"{ref['input_seconds']:g} s of real speech into audio at {_f(ref['speed'])} s of audio per "
              "second of compute. It is measured again before each section, since other load changes "
              f"during a run ({again or '–'}), and every \"× GL-32\" column divides a speed by the "
              "figure of its own section, so it compares across machines and moments better than the raw "
              "speed. Speeds come from the fastest of the repeats (other load only ever adds time); † marks "
              "a figure whose slowest repeat took over 1.5 times its fastest: it was disturbed, treat it as "
              "rough.", ""]
    if results.get("notes"):
        lines += ["Notes:", "", *[f"- {n}" for n in results["notes"]], ""]
    sections = results["sections"]
    for name, render_section in RENDERERS.items():
        if name not in sections:
            continue
        body = sections[name]
        if "error" in body:
            lines += [f"## {TITLES[name]}", "", f"**Failed:** {body['error']}", ""]
        else:
            lines += render_section(body)
    if results.get("skipped"):
        lines += ["## Not run", "", *[f"- {k}: {v}" for k, v in results["skipped"].items()], ""]
    return "\n".join(lines).rstrip() + "\n"


def _chains(body: dict) -> list[str]:
    rows = []
    for chain in body["chains"]:
        name = f"{chain['model']} + {chain['vocoder']}"
        if "error" in chain:
            rows.append([name, "–", f"failed: {chain['error']}", *["–"] * 7])
            continue
        for item in chain["inputs"]:
            shares = item["stage_shares"]
            rows.append([name, f"{item['seconds']:.0f} s", _speed(item), _f(item.get("vs_reference"), 2),
                         *[_pct(shares.get(s)) for s in STAGES],
                         _f(item["peak_rss_mb"], 0) + ("" if chain.get("own_process", True) else " (shared)"),
                         _f(chain["loaded_rss_mb"], 0)])
    lines = [f"## {TITLES['chains']}", "",
             f"Inputs: {body['inputs']}. Speed: seconds of input audio per second of compute, end to end "
             "(`VoiceConverter.convert`: decode, speaker embedding, transcript (Whisper and the aligner, on the "
             "source and, for phone matching, the references), conversion, vocoder; the fastest of the "
             "repeats after one untimed conversion); the stage shares come from as many conversions made "
             "step by step (each stage's fastest). Peak RSS: the chain's own process (models loaded first, "
             "shortest input first).", "",
             *_table(["chain", "input", "audio s / compute s", "× GL-32", "decode", "speaker", "transcript", "conversion",
                      "vocoder", "peak RSS (MiB)", "loaded (MiB)"], rows)]
    if body.get("unavailable"):
        lines += ["Not available: " + "; ".join(f"{k} ({v})" for k, v in body["unavailable"].items()), ""]
    return lines


def _vocoders(body: dict) -> list[str]:
    rows = [[r["vocoder"] + (" (the reference)" if r["reference"] else ""), f"{r['parameters'] / 1e6:.2f} M",
             _speed(r), _f(r["vs_reference"], 2)] for r in body["speed"]]
    lines = [f"## {TITLES['vocoders']}", "",
             f"One {body['input_seconds']:g} s mel of real speech; the fastest of the repeats after a warm-up. "
             "Untrained presets show what each architecture costs, not how it sounds.", "",
             *_table(["vocoder", "parameters", "audio s / compute s", "× GL-32"], rows)]
    quality = []
    for set_name, table in body["quality"].items():
        if "missing" in table:
            quality.append([set_name, table["missing"], *["–"] * 4])
            continue
        for name, figures in table.items():
            quality.append([set_name, name, str(figures["n"]), _f(figures.get("mel_l1"), 3),
                            _f(figures.get("mcd"), 2), _f(figures.get("speaker_cos"), 3)])
    lines += ["Resynthesis quality (each clip to a mel and back; lower L1/MCD and higher cosine are better):", "",
              *_table(["set", "vocoder", "clips", "log-mel L1", "MCD (dB, DTW)", "speaker cosine"], quality)]
    if body.get("cards_written"):
        lines += ["Model cards updated: " + ", ".join(f"`{os.path.relpath(p)}`" for p in body["cards_written"]), ""]
    return lines


def _speaker(body: dict) -> list[str]:
    rows = [[body["encoder"], f"{r['seconds']:.0f} s", _f(r["embed_seconds"], 3), _speed(r),
             _f(r["vs_reference"], 2)] for r in body["inputs"]]
    return [f"## {TITLES['speaker']}", "", "`SpeakerEncoder.embed` of one clip (decode, level, pause removal, "
            "GE2E over 1.6 s windows); speed in seconds of input audio per second of compute.", "",
            *_table(["encoder", "input", "seconds", "audio s / compute s", "× GL-32"], rows)]


def _cloner(body: dict) -> list[str]:
    lines = [f"## {TITLES['cloner']}", ""]
    if body["status"] != "measured":
        return lines + [f"{body['status']} ({body['why']}).", ""]
    rows = []
    for r in body["cloners"]:
        name = f"{r['cloner']} + {r['vocoder']}"
        if "error" in r:
            rows.append([name, f"failed: {r['error']}", "–", "–", "–"])
        else:
            rows.append([name, f"{r['output_seconds']:.1f} s", _f(r["speak_seconds"], 2), _speed(r),
                         _f(r["vs_reference"], 2)])
    return lines + [f"`VoiceCloner.speak` of one text ({len(body['text'])} characters) in the reference voice; "
                    "speed in seconds of output audio per second of compute.", "",
                    *_table(["cloner + vocoder", "output", "seconds", "output s / compute s", "× GL-32"], rows)]


def _growth(body: dict) -> list[str]:
    rows = []
    for r in body["sizes"]:
        if "error" in r:
            rows.append([f"{r['seconds']:g} s", f"failed: {r['error']}", *["–"] * 4])
            continue
        rows.append([f"{r['seconds']:g} s", _f(r["convert_seconds"], 2), _f(r["seconds_per_input_second"], 4),
                     _speed(r), _f(r["peak_rss_mb"], 0), _f(r["above_loaded_mb"], 0)])
    done = [r for r in body["sizes"] if "error" not in r]
    summary = []
    if len(done) >= 2:
        per_second = [r["seconds_per_input_second"] for r in done]
        first, last = done[0], done[-1]
        slope = 60 * (last["above_loaded_mb"] - first["above_loaded_mb"]) / (last["seconds"] - first["seconds"])
        summary = [f"Here the compute per input second stays within {min(per_second):.4f}–{max(per_second):.4f} s, "
                   f"and the memory above the loaded models grows by {slope:.0f} MiB per minute of input "
                   f"({done[0]['seconds']:g} s to {done[-1]['seconds']:g} s).", ""]
    return [f"## {TITLES['growth']}", "",
            f"{body['model']} + {body['vocoder']}, `VoiceConverter.convert` end to end, each length in a fresh "
            "process (after one untimed conversion of the shortest input). Chunked conversion and vocoding "
            "should keep the compute per input second flat and the memory above the loaded models bounded.", "",
            *_table(["input", "convert (s)", "compute s per input s", "audio s / compute s", "peak RSS (MiB)",
                     "above loaded models (MiB)"], rows), *summary]


def _web(body: dict) -> list[str]:
    rows = [["cold start (process start to first HTTP 200)", _f(body["cold_start_seconds"], 1, " s")],
            ["first conversion (models load on first use unless warm-up finished)",
             _f(body["first_conversion_seconds"], 2, " s")],
            [f"{body['clients']} concurrent clients x {body['rounds']}: median latency",
             _f(body["median_seconds"], 2, " s")],
            ["p95 latency", _f(body["p95_seconds"], 2, " s")], ["max latency", _f(body["max_seconds"], 2, " s")],
            ["conversions ok / failed", f"{body['ok']} / {body['failed']}"],
            ["seconds of audio converted per wall second", _f(body["audio_seconds_per_wall_second"], 1)]]
    lines = [f"## {TITLES['web']}", "",
             f"`app.py --concurrency {body['app_concurrency']}` started fresh; clients call `/convert` "
             f"(gradio_client) with a {body['clip_seconds']:g} s real-speech clip and model {body['model']} "
             "(the default vocoder).", "", *_table(["", ""], rows)]
    lines += [f"- {f}" for f in body.get("failures", [])] + ([""] if body.get("failures") else [])
    return lines


def _eval(body: dict) -> list[str]:
    rows = []
    for label, s in body["settings"].items():
        name = "ABX on" if label == "abx_on" else "ABX off"
        if "skipped" in s:
            rows.append([name, f"not measured: {s['skipped']}", *["–"] * 5])
            continue
        rows.append([name, str(body["trials"]), _f(s["wall_seconds"], 0), _f(s["trials_per_minute"], 2),
                     _f(s["trials_per_minute_running"], 2), _f(s["fixed_seconds"], 0), str(s["failed"])])
    return [f"## {TITLES['eval']}", "",
            f"`eval.report.evaluate` (= `python -m eval run`) on {body['protocol']}, system {body['system']}, "
            f"with every baseline and the full metric set: similarity and verification, {body['asr']} WER/CER, "
            "DNSMOS, MCD, F0; ABX and bitrate when on. Trials per minute: trials / wall time, loading "
            "included; \"running\": from the per-trial conversion and scoring times alone; fixed: loading "
            "models, Whisper and DNSMOS, and the set-level figures.", "",
            *_table(["setting", "trials", "wall (s)", "trials / min", "trials / min running", "fixed (s)",
                     "failed"], rows)]


def _training(body: dict) -> list[str]:
    rows = []
    for r in body["families"]:
        if "error" in r:
            rows.append([r["family"], r["preset"], "–", f"failed: {r['error']}", "–"])
        else:
            rows.append([r["family"], r["preset"], f"{r['batch_size']} x {r['segment_frames']}",
                         _f(r["steps_per_second"], 2), r["device"]])
    return [f"## {TITLES['training']}", "",
            f"`training.loop.Trainer` / `VocoderTrainer`, {body['steps']} steps on {body['data']}, batches of "
            f"{body.get('batch', 'each preset')}; steps per second over the second half (after the warm-up).", "",
            *_table(["family", "preset", "batch x frames", "steps / s", "device"], rows)]


TITLES = {"chains": "Converter + vocoder chains, end to end", "vocoders": "Vocoders alone",
          "speaker": "Speaker encoder", "cloner": "Text-to-speech cloner",
          "growth": "How cost grows with the input", "web": "Web demo", "eval": "Evaluation harness",
          "training": "Training speed"}
RENDERERS = {"chains": _chains, "vocoders": _vocoders, "speaker": _speaker, "cloner": _cloner,
             "growth": _growth, "web": _web, "eval": _eval, "training": _training}


if __name__ == "__main__":
    import sys

    from vc.hub import write_text_atomically

    if len(sys.argv) != 2 or not Path(sys.argv[1]).is_file():
        print("usage: python -m benchmarks.report RESULTS.json (writes results.md beside it)", file=sys.stderr)
        sys.exit(2)
    source = Path(sys.argv[1])
    print(write_text_atomically(source.with_name("results.md"), render(json.loads(source.read_text()))))

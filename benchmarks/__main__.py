"""python -m benchmarks [--threads 2] [--device cpu|cuda] [--only S,S | --skip S,S] [--tiny] [--out DIR]

Measures in one run, on a stated number of threads, and writes DIR/results.md and
DIR/results.json (default DIR: benchmarks/), then prints the tables:

  chains    every converter + vocoder of models.json on 5 s and 60 s of real speech, end to end,
            with the share of each stage and the peak memory (a fresh process per chain)
  vocoders  each vocoder alone against Griffin-Lim-32, and its resynthesis quality
  speaker   the GE2E speaker encoder per second of audio
  cloner    the text-to-speech cloner per second of output (once one is shipped)
  growth    conversion time and peak memory at 5, 30, 120 and 600 s (a fresh process each)
  web       app.py: cold start, first conversion, latency of 8 concurrent clients
  eval      the evaluation harness's trials per minute, full metric set, ABX off and on
  training  training steps per second per family (with --device cuda; on a CPU only via --only)

Speeds are seconds of audio per second of compute, also divided by Griffin-Lim-32's speed
measured in the same run. --tiny shrinks every input (a few seconds, one client, one trial) to
check that everything runs. Bad input prints `error: ...` and exits with status 2; a section
that fails is reported in the results and the exit status is 1.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
import traceback
from pathlib import Path

from vc.errors import VoicelabError

from .common import REPO, BenchmarkError, Settings, Speech, load_average, machine

SECTIONS = ("chains", "vocoders", "speaker", "cloner", "growth", "web", "eval", "training")
GPU_ONLY = ("training",)  # in the default selection only with --device cuda


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _sections(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in SECTIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown section(s) {', '.join(unknown) or repr(text)}; "
                                         f"choose from {','.join(SECTIONS)}")
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=_positive_int, default=2, help="CPU threads for everything (default 2)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]: the same tables on a GPU, "
                                                        "plus training steps per second")
    parser.add_argument("--only", type=_sections, default=None, metavar="S,S", help="run only these sections")
    parser.add_argument("--skip", type=_sections, default=[], metavar="S,S", help="leave these sections out")
    parser.add_argument("--tiny", action="store_true",
                        help="very short inputs, one repeat, one client, one eval trial, small growth sizes: "
                             "checks that everything runs (the figures mean little)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks",
                        help="folder for results.md and results.json (default benchmarks/)")
    parser.add_argument("--speech", type=Path,
                        default=Path(os.environ.get("VOICELAB_REAL_SPEECH", REPO.parent / "shared" / "real-speech")),
                        help="the real-speech folder (default ../shared/real-speech or $VOICELAB_REAL_SPEECH)")
    parser.add_argument("--registry", type=Path, default=REPO / "models.json",
                        help="the model registry whose converters and vocoders are measured (default models.json)")
    parser.add_argument("--repeats", type=_positive_int, default=None, help="timed repeats per figure (default 3)")
    parser.add_argument("--growth-seconds", type=float, nargs="+", default=None, metavar="S",
                        help="input lengths of the growth section (default 5 30 120 600)")
    parser.add_argument("--vocoder", dest="extra_vocoders", nargs="+", default=[], metavar="V",
                        help="more vocoders to measure (folders, training runs, Hub ids)")
    parser.add_argument("--vocoder-clips", type=_positive_int, default=None,
                        help="clips per set for resynthesis quality (default 6)")
    parser.add_argument("--write-vocoder-cards", action="store_true",
                        help="write the trained vocoders' figures into their model cards")
    parser.add_argument("--clients", type=_positive_int, default=None, help="concurrent web clients (default 8)")
    parser.add_argument("--eval-trials", type=_positive_int, default=None, help="evaluation trials (default 4)")
    parser.add_argument("--alignments", type=Path, default=None,
                        help="phone alignments of the held-out speakers for ABX (default data/aligned/heldout.jsonl)")
    parser.add_argument("--train-steps", type=_positive_int, default=None,
                        help="training steps per family (default 40)")
    parser.add_argument("--note", action="append", default=[], metavar="TEXT",
                        help="a note for results.md (e.g. why a setting was cut); may be repeated")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, no tables on stdout")
    return parser


def settings_from(args: argparse.Namespace, work: Path) -> Settings:
    values = Settings.tiny_overrides() if args.tiny else {}
    given = {"repeats": args.repeats, "vocoder_clips": args.vocoder_clips, "clients": args.clients,
             "eval_trials": args.eval_trials, "train_steps": args.train_steps,
             "growth_seconds": tuple(args.growth_seconds) if args.growth_seconds else None}
    values.update({k: v for k, v in given.items() if v is not None})
    if any(s <= 0 for s in values.get("growth_seconds", ())):
        raise BenchmarkError("--growth-seconds must all be above 0")
    settings = Settings(threads=args.threads, device=args.device, work=work, speech=args.speech,
                        registry=args.registry, extra_vocoders=tuple(args.extra_vocoders),
                        write_vocoder_cards=args.write_vocoder_cards, alignments=args.alignments,
                        quiet=args.quiet, notes=list(args.note), **values)
    if not args.tiny:  # say where this run measured less than the full table does
        default = Settings(threads=1, device="cpu", work=work, speech=args.speech)
        for name, what in (("growth_seconds", "growth sizes"), ("eval_trials", "evaluation trials"),
                           ("repeats", "timed repeats"), ("vocoder_clips", "quality clips per set"),
                           ("clients", "web clients"), ("train_steps", "training steps")):
            ours, full = getattr(settings, name), getattr(default, name)
            if ours != full:
                show = lambda v: " ".join(f"{x:g}" for x in v) if isinstance(v, tuple) else str(v)  # noqa: E731
                settings.notes.append(f"{what}: {show(ours)} in this run (the full table: {show(full)})")
    return settings


def selected_sections(args: argparse.Namespace) -> list[str]:
    if args.only and args.skip:
        raise BenchmarkError("give --only or --skip, not both")
    if args.only:
        return [s for s in SECTIONS if s in args.only]
    gpu = args.device.startswith("cuda")
    return [s for s in SECTIONS if s not in args.skip and (gpu or s not in GPU_ONLY)]


def check_inputs(args: argparse.Namespace) -> None:
    """Everything a run can be told wrong, refused before anything is measured."""
    from vc.devices import check_device
    from vc.registry import ModelRegistry

    try:
        args.device = check_device(args.device)
    except VoicelabError as err:
        raise BenchmarkError(f"--device {args.device}: {err}") from None
    if args.out.exists() and not args.out.is_dir():
        raise BenchmarkError(f"--out {args.out} is a file; give a folder for results.md and results.json")
    if not args.speech.is_dir():
        raise BenchmarkError(f"--speech {args.speech} is not a folder; give the real-speech folder "
                             "(../shared/real-speech, or set $VOICELAB_REAL_SPEECH)")
    if not args.registry.is_file():
        raise BenchmarkError(f"--registry {args.registry} does not exist; give a models.json")
    ModelRegistry.from_file(args.registry)  # malformed entries are named here
    if args.alignments is not None and not args.alignments.is_file():
        raise BenchmarkError(f"--alignments {args.alignments} does not exist; write it with python -m vc.data align")
    for spec in args.extra_vocoders:
        from vc.hub import resolve_model_dir
        from vc.pipeline import resolve_run_folder
        try:
            resolve_model_dir(resolve_run_folder(spec))
        except VoicelabError as err:  # it says where it looked
            raise BenchmarkError(f"--vocoder {spec}: {err}") from None


def runners() -> dict:
    from . import chains, growth, harness, train_speed, voices, vocoders, web
    return {"chains": chains.run, "vocoders": vocoders.run, "speaker": voices.speaker_encoder,
            "cloner": voices.cloner, "growth": growth.run, "web": web.run, "eval": harness.run,
            "training": train_speed.run}


def run(args: argparse.Namespace, argv: list[str]) -> int:
    import torch
    from tqdm.auto import tqdm

    from . import report, vocoders

    check_inputs(args)
    sections = selected_sections(args)
    torch.set_num_threads(args.threads)
    os.environ.update({k: str(args.threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")})
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="voicelab-benchmarks-") as tmp:
        settings = settings_from(args, Path(tmp))
        info = machine(settings)
        speech = Speech(settings.speech, settings.work)
        command = "python -m benchmarks" + "".join(f" {shlex.quote(a)}" for a in argv)
        bar = tqdm(total=len(sections) + 1, desc="benchmarks", unit="section", disable=args.quiet)
        bar.set_postfix_str("reference: Griffin-Lim-32")
        reference = vocoders.reference_speed(settings, speech)
        bar.update(1)
        results = {"format": report.FORMAT, "version": report.VERSION, "command": command, "machine": info,
                   "settings": settings.to_dict(), "inputs": speech.describe(), "reference": reference,
                   "notes": list(settings.notes), "sections": {}, "skipped": {}}
        if info["other_load"] and args.threads > 1:
            results["notes"].append(
                f"Other jobs were using the CPU (see the machine table). With {args.threads} threads on "
                f"{info['usable_cores']} cores, torch's threads wait for each other whenever one is descheduled, "
                "which can slow work made of many small operations (Griffin-Lim, the LSTMs) several times "
                "over, at moments: the † figures are where it showed.")
        if args.tiny:
            results["notes"].append("--tiny: inputs of a few seconds, one repeat; a check that everything runs, "
                                    "not figures to quote")
        if not args.device.startswith("cuda") and "training" not in sections:
            results["skipped"]["training"] = "training speed is part of the GPU table (--device cuda); " \
                                             "run it on a CPU with --only training"
        for name in SECTIONS:
            if name not in sections and name not in results["skipped"]:
                results["skipped"][name] = "left out (--only/--skip)"
        failed = 0
        table = runners()

        def progress(what: str) -> None:
            bar.set_postfix_str(what)
        for index, name in enumerate(sections):
            results.setdefault("load_by_section", {})[name] = load_average()
            # the reference again before each section: other load changes during a long run, and
            # each section's ratios divide by the reference measured next to it
            progress(f"{name}: reference")
            here = reference if index == 0 else vocoders.reference_speed(settings, speech)
            reference.setdefault("by_section", {})[name] = here["speed"]
            progress(name)
            try:
                results["sections"][name] = table[name](settings, speech, here, progress)
            except VoicelabError as err:
                results["sections"][name] = {"error": str(err)}
            except Exception as err:  # noqa: BLE001 - one broken section must not lose the others
                results["sections"][name] = {"error": f"{type(err).__name__}: {err}",
                                             "trace": traceback.format_exc(limit=-4)}
            failed += _count_failures(results["sections"][name])
            bar.update(1)
        bar.close()
        info["load_average_end"] = load_average()
        results["seconds"] = time.perf_counter() - started
        md_path, json_path = report.write(results, args.out)
    if not args.quiet:
        print(md_path.read_text())
    print(f"wrote {md_path} and {json_path} in {results['seconds']:.0f} s"
          + (f"; {failed} measurement(s) failed" if failed else ""))
    return 1 if failed else 0


def _count_failures(body: dict) -> int:
    """Failed measurements in a section's results (a failed section counts as one)."""
    if "error" in body:
        return 1
    items = [*body.get("chains", []), *body.get("sizes", []), *body.get("families", []),
             *body.get("cloners", [])]
    return sum("error" in item for item in items) + int(body.get("failed", 0) or 0) \
        + sum(int(s.get("failed", 0) or 0) for s in body.get("settings", {}).values())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    try:
        return run(args, argv)
    except (VoicelabError, ValueError, OSError) as err:  # bad input: a message, not a traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; nothing written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

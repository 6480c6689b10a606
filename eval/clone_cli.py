"""The text-cloning commands of `python -m eval`: clone-protocol, clone-run, clone-report.

    python -m eval clone-protocol --out runs/clone.json --trials 50 --seed 0
    python -m eval clone-run --protocol runs/clone.json --out runs/eval-clone \\
        --systems synth-small+hifigan-fast cascade:piper-joe:ppgvc-small+hifigan-fast real
    python -m eval clone-report --results runs/eval-clone --out reports/clone-50

Registered by `eval.__main__.build_parser` like the other commands; bad input prints
`error: ...` and exits with status 2.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

SETS = ("real", "synthetic")  # eval.clone_protocol.SETS, without importing it for --help


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _default_root() -> str:
    return os.environ.get("VOICELAB_REAL_SPEECH", "../shared/real-speech")


def add_clone_commands(commands) -> None:
    sub = commands.add_parser("clone-protocol", help="text cloning trials: held-out sentences, unseen voices")
    sub.add_argument("--out", required=True, help="protocol file to write (.json)")
    sub.add_argument("--trials", type=_positive_int, required=True,
                     help="number of trials, split evenly over the sets (real first)")
    sub.add_argument("--seed", type=int, default=0, help="the same seed gives the same protocol (default 0)")
    sub.add_argument("--root", default=None,
                     help="real-speech folder (librispeech/test-*, vctk/); default $VOICELAB_REAL_SPEECH or "
                          "../shared/real-speech")
    sub.add_argument("--corpus", default="data/corpus",
                     help="synthetic corpus whose test-split voices are the synthetic set (default data/corpus)")
    sub.add_argument("--sets", nargs="+", choices=list(SETS), default=list(SETS), help="voice sets (default both)")
    sub.add_argument("--references", type=_positive_int, default=2, metavar="K",
                     help="reference clips of the voice per trial (default 2)")
    sub.add_argument("--transcripts", nargs="*", default=None, metavar="M.jsonl",
                     help="JSONL manifests with texts of real clips that have none (default "
                          "data/aligned/heldout-text.jsonl where it exists: Whisper's transcripts of test-other)")
    sub.add_argument("--exclude-texts", nargs="*", default=[], metavar="M",
                     help="manifests (JSONL/CSV/TSV with a text field, or text lines) of texts a trained model saw, "
                          "e.g. the synthesizer's training data; the same sentences are never used")
    sub.add_argument("--min-words", type=_positive_int, default=5, help="shortest text in words (default 5)")
    sub.add_argument("--max-words", type=_positive_int, default=25, help="longest text in words (default 25)")
    sub.add_argument("--no-render", action="store_true",
                     help="do not render synthetic voices' readings of texts they never read (then the real "
                          "baseline covers only texts the corpus has them read)")
    sub.set_defaults(handler=_clone_protocol)

    sub = commands.add_parser("clone-run", help="run text-to-speech systems on a cloning protocol and score them")
    sub.add_argument("--protocol", required=True, help="cloning protocol from `python -m eval clone-protocol`")
    sub.add_argument("--systems", nargs="+", required=True, metavar="S",
                     help="CLONER+VOCODER (a synthesizer: checkpoints/ name, folder, run or Hub id; vocoder "
                          "default griffinlim), cascade:piper-joe:MODEL+VOCODER (Piper reads the text, the converter "
                          "turns it into the voice), or real (the voice's own reading, where the protocol has one)")
    sub.add_argument("--out", required=True, help="output folder; a second run there resumes")
    sub.add_argument("--asr", default="auto",
                     help="ASR for WER/CER: auto (whisper-base when its weights are here, else pocketsphinx), "
                          "whisper-base, whisper-SIZE, whisper:HUB_ID_OR_FOLDER, pocketsphinx, or none")
    sub.add_argument("--naturalness", choices=["dnsmos", "none"], default="dnsmos",
                     help="naturalness rater (default dnsmos)")
    sub.add_argument("--redo", nargs="+", default=[], metavar="S",
                     help="systems (as named in --systems) to run and score again on every trial; the others "
                          "are reused (a new checkpoint under the same name is re-run without this)")
    sub.add_argument("--resume", action="store_true",
                     help="the default: a run in a folder with results reuses every finished trial")
    sub.add_argument("--threads", type=_positive_int, default=None, help="torch CPU threads")
    sub.add_argument("--device", default="cpu", help="torch device (default cpu)")
    sub.add_argument("--quiet", action="store_true", help="no progress bar")
    sub.set_defaults(handler=_clone_run)

    sub = commands.add_parser("clone-report", help="the cloning report of a clone-run folder, without its rows")
    sub.add_argument("--results", required=True, help="a `python -m eval clone-run` output folder")
    sub.add_argument("--out", required=True, help="folder for report.json, report.md and the chart")
    sub.set_defaults(handler=_clone_report)


def _clone_protocol(args) -> int:
    from .clone_protocol import build_clone_protocol

    root = args.root or _default_root()
    if args.root is None and not Path(root).is_dir():
        root = None  # no real speech here: the synthetic set alone (say so below)
    transcripts = args.transcripts
    if transcripts is None:
        transcripts = [p for p in ["data/aligned/heldout-text.jsonl"] if Path(p).is_file()]
    corpus = args.corpus if "synthetic" in args.sets else None
    if corpus is not None and not Path(corpus).exists():
        raise ValueError(f"--corpus {corpus} does not exist; build one with `python -m vc.data build-corpus` "
                         "or leave the synthetic set out with --sets real")
    out = Path(args.out)
    renders = None if args.no_render else out.with_name(f"{out.stem}-renders")
    protocol = build_clone_protocol(args.trials, args.seed, root if "real" in args.sets else None, corpus,
                                    references=args.references, transcripts=transcripts,
                                    exclude_texts=args.exclude_texts, min_words=args.min_words,
                                    max_words=args.max_words, render_dir=renders, sets=args.sets)
    path = protocol.save(out)
    meta = protocol.metadata
    sets = ", ".join(f"{n} {s}" for s, n in meta["sets"].items())
    print(f"wrote {path}: {len(protocol)} trials ({sets}), {meta['speakers']} voices, {meta['real_readings']} with "
          f"the voice's own reading" + ("" if root or "real" not in args.sets else
                                        f"; no real speech at {_default_root()}, so no real set"))
    for note in meta.get("notes") or []:
        print(f"note: {note}")
    return 0


def _clone_run(args) -> int:
    import torch

    from .clone_report import render_clone_markdown
    from .clone_runner import evaluate_cloning

    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    report = evaluate_cloning(args.protocol, args.systems, args.out,
                              asr=None if args.asr.lower() == "none" else args.asr,
                              naturalness=None if args.naturalness == "none" else args.naturalness,
                              device=args.device, redo=args.redo, show_progress=not args.quiet)
    print(render_clone_markdown(report))
    run = report["run"]
    print(f"wrote {args.out}/report.json, report.md, report.html in {time.perf_counter() - start:.0f} s "
          f"({run['converted']} spoken, {run['rescored']} rescored, {run['reused']} reused, {run['failed']} failed)")
    return 0


def _clone_report(args) -> int:
    from .clone_report import publish_clone_report

    report = publish_clone_report(args.results, args.out)
    not_run = sum(e.get("not_run", 0) for info in report["sets"].values() for e in info["systems"])
    print(f"wrote {args.out}/report.json, report.md, similarity-wer.png"
          + (f" ({not_run} trials not run yet)" if not_run else ""))
    return 0

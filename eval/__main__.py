"""python -m eval COMMAND ...

  protocol --corpus DIR [DIR ...] --out P.json|P.csv --trials N --seed S
           [--unseen-only] [--unseen-speakers SPK ...] [--cross-gender] [--references K] [--require-text]
                                   trials from any corpus vc.data reads
  real-speech-protocol --root DIR --out P.json|P.csv --trials N --seed S
           [--cross-gender] [--references K] [--require-text] [--corpora librispeech vctk]
                                   trials over the held-out speakers of a real-speech folder

Each command is registered by an `_add_*` function that sets `handler` on its sub-parser, so
further commands (run, card, report) slot in the same way. Bad input prints `error: ...` and
exits with status 2.
"""

from __future__ import annotations

import argparse
import sys

from vc.errors import VoicelabError


def build_parser() -> argparse.ArgumentParser:
    """The `python -m eval` parser with every sub-command registered."""
    parser = argparse.ArgumentParser(prog="python -m eval", description="voicelab's evaluation harness.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_protocol(commands)
    _add_real_speech_protocol(commands)
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
    sub.add_argument("--root", required=True, help="folder like ../shared/real-speech (librispeech/, vctk/)")
    _add_trial_options(sub)
    sub.add_argument("--corpora", nargs="+", choices=["librispeech", "vctk"], default=["librispeech", "vctk"],
                     help="which held-out corpora to use (default both)")
    sub.set_defaults(handler=_real_speech_protocol)


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
    return _report(protocol, protocol.save(args.out))


def _report(protocol, path) -> int:
    meta = protocol.metadata
    print(f"wrote {path}: {len(protocol)} trials, {meta['speakers']} speakers, {meta['parallel_trials']} with the"
          f" target's parallel utterance, {sum(bool(t.source_text) for t in protocol)} with source text")
    return 0


if __name__ == "__main__":
    sys.exit(main())

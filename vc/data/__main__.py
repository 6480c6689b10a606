"""python -m vc.data COMMAND ...

  build-corpus --out DIR [--voices N] [--sentences M] [--seed S]   render a synthetic corpus
  describe PATH                                                    speakers, utterances, hours
  speaker-report PATH [--per-speaker K]                            speaker-encoder distinctness
  voices [--seed S]                                                the synthetic voice catalogue
  align --corpus PATH [PATH ...] --out M.jsonl                     phone alignments from transcripts
  build-piper --out DIR [--sentences N] [--variants K]             Piper joe voice + variants, aligned
  subset --corpus PATH --out M.jsonl [--split S] [--exclude-test-of PATH ...]   a training manifest
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys
import time
import warnings

from vc.errors import VoicelabError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vc.data", description="Speech corpora: build, describe, check.")
    commands = parser.add_subparsers(dest="command", required=True)

    build = commands.add_parser("build-corpus", help="render a multi-speaker corpus with flite, festival and espeak-ng")
    build.add_argument("--out", required=True, help="output folder (re-running resumes it)")
    build.add_argument("--voices", type=int, default=30, help="number of synthetic speakers (default 30)")
    build.add_argument("--sentences", type=int, default=300, help="sentences per speaker (default 300)")
    build.add_argument("--seed", type=int, default=0, help="picks sentences, voice order and split (default 0)")
    build.add_argument("--test-fraction", type=float, default=0.2, help="share of speakers held out (default 0.2)")
    build.add_argument("--parallel-fraction", type=float, default=0.2,
                       help="share of each speaker's sentences read by every speaker (default 0.2)")
    build.add_argument("--jobs", type=int, default=None, help="worker processes (default: 2 or the CPU count if less)")
    build.add_argument("--engines", nargs="+", choices=["flite", "festival", "espeak"], help="only these engines")
    build.add_argument("--quiet", action="store_true", help="no progress bar")

    describe = commands.add_parser("describe", help="count speakers and utterances of any supported corpus")
    describe.add_argument("path", help="corpus folder or manifest")
    describe.add_argument("--speakers", action="store_true", help="list every speaker")

    report = commands.add_parser("speaker-report", help="speaker-encoder similarity of a corpus's speakers")
    report.add_argument("path", help="corpus folder or manifest")
    report.add_argument("--per-speaker", type=int, default=8, help="utterances embedded per speaker (default 8)")
    report.add_argument("--out", default=None, help="folder for speaker_report.json/.png (default: the corpus folder)")
    report.add_argument("--seed", type=int, default=0)

    voices = commands.add_parser("voices", help="list the synthetic voices available here, in build order")
    voices.add_argument("--seed", type=int, default=0)

    align = commands.add_parser("align", help="force-align transcribed speech (pocketsphinx) into a manifest")
    align.add_argument("--corpus", nargs="+", required=True, help="corpus folders or manifests with transcripts")
    align.add_argument("--out", required=True, help="JSONL manifest to write (re-running resumes it)")
    align.add_argument("--quiet", action="store_true", help="no progress bar")

    piper = commands.add_parser("build-piper", help="render Piper's en_US-joe-medium voice and shifted variants")
    piper.add_argument("--out", required=True, help="output folder (re-running resumes it)")
    piper.add_argument("--sentences", type=int, default=300, help="sentences per variant (default 300)")
    piper.add_argument("--variants", type=int, default=6, help="voices: the plain one and shifted variants (1-6)")
    piper.add_argument("--seed", type=int, default=0)
    piper.add_argument("--quiet", action="store_true", help="no progress bar")

    subset = commands.add_parser("subset", help="write a manifest of part of a corpus (e.g. its train split)")
    subset.add_argument("--corpus", required=True, help="corpus folder or manifest")
    subset.add_argument("--out", required=True, help="manifest to write (.jsonl or .csv)")
    subset.add_argument("--split", default=None, help="keep only this split (manifest 'split' field), e.g. train")
    subset.add_argument("--exclude-test-of", nargs="+", default=[], metavar="PATH",
                        help="also drop every speaker that is in the test split of these corpora "
                             "(keeps an evaluation protocol's unseen voices unseen)")

    shift = commands.add_parser("shift-speakers", help="more speakers from a manifest's clips, each shifted in "
                                "pitch and formants (duration, text and alignment kept)")
    shift.add_argument("--manifest", required=True, help="the clips to shift (.jsonl or .csv manifest)")
    shift.add_argument("--out", required=True, help="output folder: wavs/ and manifest.jsonl (re-running resumes it)")
    shift.add_argument("--cents", type=float, nargs="+", default=[-400, -200, 200, 400],
                       help="the shifts, one new speaker per clip's speaker and shift (100 cents = a semitone)")
    shift.add_argument("--quiet", action="store_true", help="no progress bar")

    args = parser.parse_args(argv)
    warnings.simplefilter("always")
    warnings.formatwarning = lambda message, *_args, **_kw: f"warning: {message}\n"
    try:
        return {"build-corpus": _build, "describe": _describe, "speaker-report": _report, "voices": _voices,
                "align": _align, "subset": _subset, "build-piper": _build_piper,
                "shift-speakers": _shift_speakers}[args.command](args)
    except VoicelabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _build(args) -> int:
    from vc.data.build import build_corpus

    start = time.monotonic()
    result = build_corpus(args.out, voices=args.voices, sentences=args.sentences, seed=args.seed,
                          test_fraction=args.test_fraction, parallel_fraction=args.parallel_fraction,
                          jobs=args.jobs, engine_names=args.engines, progress=not args.quiet)
    elapsed = time.monotonic() - start
    print(f"{result.manifest}: rendered {result.rendered}, reused {result.reused}, failed {len(result.failed)}"
          f" in {elapsed:.1f} s")
    for utt_id, reason in list(result.failed.items())[:10]:
        print(f"  failed {utt_id}: {reason}", file=sys.stderr)
    return 1 if result.failed else 0


def _describe(args) -> int:
    import soundfile as sf

    from vc.data.readers import read_corpus, speakers_of

    utterances = read_corpus(args.path)
    counts = speakers_of(utterances)
    seconds = 0.0
    for utt in utterances:  # the builder's manifest knows durations; other corpora are measured
        duration = utt.extra.get("duration")
        seconds += float(duration) if duration not in (None, "") else sf.info(str(utt.path)).duration
    corpora = sorted({u.corpus for u in utterances})
    print(f"{args.path}: {len(utterances)} utterances, {len(counts)} speakers, {seconds / 3600:.2f} h"
          f" ({', '.join(corpora)})")
    print(f"  with text: {sum(u.text is not None for u in utterances)},"
          f" with alignment: {sum(u.alignment is not None for u in utterances)}")
    splits = sorted({str(u.extra['split']) for u in utterances if 'split' in u.extra})
    for split in splits:
        in_split = [u for u in utterances if u.extra.get("split") == split]
        print(f"  {split}: {len(in_split)} utterances, {len({u.speaker for u in in_split})} speakers")
    if any(str(u.extra.get("parallel")).lower() == "true" for u in utterances):
        parallel = {u.extra.get("sentence_id") for u in utterances if str(u.extra.get("parallel")).lower() == "true"}
        print(f"  parallel sentences (read by every speaker): {len(parallel)}")
    if args.speakers:
        for speaker, count in counts.items():
            print(f"  {speaker}\t{count}")
    return 0


def _report(args) -> int:
    from vc.data.speaker_report import format_report, speaker_report

    report = speaker_report(args.path, out_dir=args.out, per_speaker=args.per_speaker, seed=args.seed)
    print(format_report(report))
    print(f"wrote {report['json']}" + (f" and {report['png']}" if "png" in report else " (no matplotlib: no PNG)"))
    return 0


def _align(args) -> int:
    from vc.data.align import align_corpus
    from vc.data.readers import read_corpora, read_corpus

    utterances = read_corpus(args.corpus[0]) if len(args.corpus) == 1 else read_corpora(args.corpus)
    counts = align_corpus(utterances, args.out, progress=not args.quiet)
    print(f"{args.out}: aligned {counts['aligned']}, reused {counts['reused']}, failed {counts['failed']}"
          f" (listed in {args.out}.failed.tsv), without transcript {counts['untranscribed']}")
    return 0


def _build_piper(args) -> int:
    from vc.data.piper_corpus import build_piper_corpus

    if args.sentences < 1 or not 1 <= args.variants <= 6:
        raise VoicelabError("--sentences must be at least 1 and --variants between 1 and 6")
    print(f"wrote {build_piper_corpus(args.out, args.sentences, args.seed, args.variants, not args.quiet)}")
    return 0


def _shift_speakers(args) -> int:
    from tqdm import tqdm

    from vc.data.shifted_speakers import shift_speakers

    start = time.monotonic()
    with tqdm(desc="shifting", unit="clip", disable=args.quiet) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)
        manifest, rendered, reused = shift_speakers(Path(args.manifest), Path(args.out), args.cents, progress)
    print(f"{manifest}: rendered {rendered}, reused {reused} in {time.monotonic() - start:.1f} s")
    return 0


def _subset(args) -> int:
    from vc.data.manifest import write_manifest
    from vc.data.readers import read_corpus

    utterances = read_corpus(args.corpus)
    held_out = {u.speaker for path in args.exclude_test_of for u in read_corpus(path)
                if str(u.extra.get("split", "")).lower() == "test"}
    kept = [u for u in utterances if u.speaker not in held_out
            and (args.split is None or str(u.extra.get("split", "")) == args.split)]
    if not kept:
        raise VoicelabError(f"nothing left of {len(utterances)} utterances after the filters; check --split "
                            f"(splits here: {sorted({str(u.extra.get('split')) for u in utterances})})")
    write_manifest(kept, args.out)
    print(f"{args.out}: {len(kept)} of {len(utterances)} utterances, {len({u.speaker for u in kept})} speakers"
          f" ({len(held_out)} test speakers of other corpora excluded)")
    return 0


def _voices(args) -> int:
    from vc.data import engines
    from vc.data.voices import voice_catalogue

    for i, voice in enumerate(voice_catalogue(args.seed, engines.available_voices()), 1):
        effects = (f" shift {voice.shift_cents:+.0f}c f0 x{voice.f0_scale} tempo x{voice.tempo}" if voice.is_variant
                   else "")
        print(f"{i:3d} {voice.name:34s} {voice.engine:9s} {voice.voice}{effects}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

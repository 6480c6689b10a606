"""Transcribe a corpus that has no text with an eval ASR backend, into a JSONL manifest.

    python scripts/transcribe_corpus.py --corpus ../shared/real-speech/librispeech/train-clean-100 \
        --out data/aligned/librispeech-train-text.jsonl --asr whisper-base

Each row keeps the corpus reader's speaker and fields and adds `text` and `text_source` (the
recogniser's name). It resumes: files already in the output are skipped. The result is what
`python -m vc.data align` needs to give the speech phone alignments.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eval.asr import load_recogniser  # noqa: E402
from vc.data import read_corpus  # noqa: E402
from vc.errors import VoicelabError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", required=True, help="a corpus folder or manifest vc.data reads")
    parser.add_argument("--out", required=True, help="JSONL manifest to write (re-running resumes it)")
    parser.add_argument("--asr", default="whisper-base", help="eval.asr backend (default whisper-base)")
    parser.add_argument("--threads", type=int, default=None, help="ASR CPU threads")
    args = parser.parse_args(argv)
    try:
        utterances = read_corpus(args.corpus)
        recogniser = load_recogniser(args.asr, **({"threads": args.threads} if args.threads else {}))
    except (VoicelabError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = Path(os.path.abspath(args.out))
    out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if out.is_file():
        for line in out.read_text(encoding="utf-8").splitlines():
            try:
                done.add(os.path.normpath(out.parent / json.loads(line)["path"]))
            except (ValueError, KeyError):
                continue  # a line cut short by an interruption
    written = 0
    with open(out, "a", encoding="utf-8") as handle:
        for utt in tqdm(utterances, desc="transcribing", unit="utt"):
            path = os.path.abspath(utt.path)
            if os.path.normpath(path) in done:
                continue
            text = recogniser.transcribe(utt.path)
            row = {"path": os.path.relpath(path, out.parent), "speaker": utt.speaker, "text": text,
                   "corpus": utt.corpus, **utt.extra, "text_source": recogniser.name}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            handle.flush()
            written += 1
    print(f"{out}: {written} transcribed, {len(done)} already there")
    return 0


if __name__ == "__main__":
    sys.exit(main())

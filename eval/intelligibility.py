"""Word and character error rates of ASR transcripts, with jiwer.

Both sides are normalised the same way first: Unicode NFKC, lower case, hyphens and slashes to
spaces, punctuation removed (apostrophes inside words kept: "don't"), whitespace collapsed.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Sequence

import jiwer


def normalize_text(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[-/–—]", " ", text)
    text = re.sub(r"[^\w\s']", " ", text)
    text = re.sub(r"(?<!\w)'|'(?!\w)", " ", text)  # quotes, not apostrophes in words
    return " ".join(text.split())


def error_rates(references: Sequence[str], hypotheses: Sequence[str]) -> dict[str, float]:
    """Corpus-level WER and CER (errors summed over all utterances / reference length).

    An empty hypothesis counts every reference word as deleted; an empty reference is an
    error, since no rate can be defined against it.
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    refs = [normalize_text(r) for r in references]
    hyps = [normalize_text(h) for h in hypotheses]
    empty = [i for i, r in enumerate(refs) if not r]
    if empty:
        raise ValueError(f"reference transcript(s) {empty[:5]} are empty after normalisation")
    words = jiwer.process_words(refs, hyps)
    chars = jiwer.process_characters(refs, hyps)
    return {"wer": float(words.wer), "cer": float(chars.cer), "words": sum(len(r.split()) for r in refs)}

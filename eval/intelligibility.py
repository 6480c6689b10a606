"""Word and character error rates of ASR transcripts, with jiwer.

Both sides are normalised the same way first, with Whisper's English normaliser (the
`whisper-normalizer` package: the rules OpenAI published with Whisper, which the field's WER
figures use): lower case, punctuation and filler words ("uh", "hmm") removed, spelled-out
numbers and digits brought to one form ("twenty-one" and "21" both become "21", "nineteen
ninety" and "1990" both "1990"), titles spelled out ("Mr." -> "mister"), contractions expanded
("don't" -> "do not"), British spellings made American ("colour" -> "color"), hyphens and
slashes made spaces. A transcript that reads "Mr. Smith paid 5 dollars" is then no error
against "Mister Smith paid five dollars".
"""
from __future__ import annotations

import functools
import re
import unicodedata
from typing import Sequence

import jiwer


@functools.lru_cache(maxsize=1)
def _whisper_normaliser():
    from whisper_normalizer.english import EnglishTextNormalizer
    return EnglishTextNormalizer()


def normalize_text(text: str) -> str:
    """The canonical form both a reference and an ASR hypothesis are compared in."""
    text = unicodedata.normalize("NFKC", text or "")
    text = re.sub(r"[-/–—]", " ", text)  # "super-imposition" and "super imposition" read alike
    text = re.sub(r"\bO\.?K\.?(?=\W|$)", "okay", text, flags=re.IGNORECASE)
    words = _whisper_normaliser()(text).split()
    return " ".join(w for w in words if any(c.isalnum() for c in w))  # "..." keeps a lone "."


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

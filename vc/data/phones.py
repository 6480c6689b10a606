"""One phone set for every source of phone labels: 39 ARPAbet phones (CMUdict's, no stress)
plus silence.

Labels come from three places that each speak their own phone language:

- flite and festival alignments: lower-case ARPAbet, with "ax" for schwa and "pau" for pauses;
- pocketsphinx's aligner: upper-case CMU phones, "SIL" and noise fillers such as "+NSN+";
- espeak-ng: its own mnemonics ("@", "aI", "tS", "3:", ...), for espeak voices of the corpus
  builder and for the pronunciation of words CMUdict lacks.

`to_arpabet(phone, phoneset)` maps any of them to this set. espeak's vowels are mapped to the
nearest General American phone (its British "0" to "aa", syllabic "@L" to "l"); the mapping is
many-to-one, which is what a content model trained across engines needs.
"""
from __future__ import annotations

import math
import re

SILENCE = "sil"
ARPABET = ("aa", "ae", "ah", "ao", "aw", "ay", "b", "ch", "d", "dh", "eh", "er", "ey", "f", "g",
           "hh", "ih", "iy", "jh", "k", "l", "m", "n", "ng", "ow", "oy", "p", "r", "s", "sh", "t",
           "th", "uh", "uw", "v", "w", "y", "z", "zh")
PHONES = (SILENCE, *ARPABET)  # index 0 is silence
PHONE_INDEX = {p: i for i, p in enumerate(PHONES)}

_ARPABET_ALIASES = {"ax": "ah", "axr": "er", "ix": "ih", "el": "l", "em": "m", "en": "n", "nx": "n",
                    "dx": "t", "q": "t", "hv": "hh", "pau": SILENCE, "sil": SILENCE, "h#": SILENCE,
                    "#": SILENCE, "ssil": SILENCE, "brth": SILENCE}

# espeak-ng mnemonics (after stress marks are stripped) -> ARPAbet
_ESPEAK = {
    "@": "ah", "@2": "ah", "@5": "ah", "@L": "l", "3": "er", "3:": "er", "0": "aa", "A:": "aa",
    "A@": "aa", "aa": "ae", "a": "ae", "a#": "ah", "V": "ah", "VR": "ah", "E": "eh", "e@": "eh",
    "eI": "ey", "I": "ih", "I#": "ih", "I2": "ih", "i": "iy", "i:": "iy", "i@": "iy", "i@3": "iy",
    "O": "ao", "O:": "ao", "O2": "ao", "O@": "ao", "o@": "ao", "OI": "oy", "oU": "ow", "U": "uh",
    "U@": "uh", "u:": "uw", "aI": "ay", "aI2": "ay", "aI@": "ay", "aI3": "ay", "aU": "aw",
    "D": "dh", "T": "th", "S": "sh", "Z": "zh", "N": "ng", "tS": "ch", "dZ": "jh", "h": "hh",
    "j": "y", "r": "r", "r-": "r", "R": "r", "t#": "t", "t2": "t", "?": "t", "w#": "w",
    "n-": "n", "m-": "m", "l/": "l", "x": "k", "pau": SILENCE, "_": SILENCE,
}
_ESPEAK_MODIFIERS = re.compile(r"[;#\-2-5/\[]+$")  # ';' palatal, '#' variant, '[' dental, digits: allophones


class PhoneSetError(ValueError):
    """A phone label that no mapping covers."""


def to_arpabet(phone: str, phoneset: str = "arpabet") -> str | None:
    """The phone of PHONES for `phone` of `phoneset` ("arpabet", "cmu" (pocketsphinx) or
    "espeak"); None for a marker that carries no phone (espeak's ';' alone).

    Raises PhoneSetError for a label no mapping knows.
    """
    if phoneset in ("arpabet", "cmu"):
        if phone.startswith("+") or phone.startswith("<"):  # pocketsphinx fillers: +NSN+, <sil>
            return SILENCE
        label = re.sub(r"\d$", "", phone.lower())  # CMUdict stress digits
        label = _ARPABET_ALIASES.get(label, label)
        if label in PHONE_INDEX:
            return label
        raise PhoneSetError(f"{phone!r} is not an ARPAbet phone ({phoneset})")
    if phoneset == "espeak":
        text = phone.strip().lstrip("',%=")
        if text in ("", ";", "|"):
            return None
        if text in _ESPEAK:
            return _ESPEAK[text]
        stripped = _ESPEAK_MODIFIERS.sub("", text)
        if stripped in _ESPEAK:
            return _ESPEAK[stripped]
        if stripped.lower() in PHONE_INDEX:  # consonants written the same (b, d, f, ...)
            return stripped.lower()
        raise PhoneSetError(f"espeak phoneme {phone!r} has no ARPAbet mapping")
    raise PhoneSetError(f"unknown phone set {phoneset!r}; use 'arpabet', 'cmu' or 'espeak'")


def espeak_word_phones(word: str) -> list[str]:
    """PHONES of one word as `espeak-ng -x --sep=_` writes it ("n_'o@_s_I2_m_,E_n"); silences
    and markers are dropped. Raises PhoneSetError for a mnemonic no mapping knows."""
    phones = []
    for symbol in word.split("_"):
        phone = to_arpabet(symbol, "espeak")
        if phone is not None and phone != SILENCE:
            phones.append(phone)
    return phones


def frame_index(seconds: float, frame_rate: float) -> int:
    """The first frame whose centre (t / frame_rate) lies at or after `seconds`."""
    return math.ceil(seconds * frame_rate - 1e-9)


def frame_labels(segments, frames: int, frame_rate: float, phoneset: str = "arpabet",
                 offset: float = 0.0) -> list[int]:
    """Phone index per frame: frame t (centred at t / frame_rate - offset seconds) takes the
    segment that contains its centre; frames outside every segment are silence.

    Args:
        segments: `Segment`s (onset, offset in seconds, phone) in time order.
        offset: seconds cut from the start of the audio the frames were computed on.
    """
    labels = [PHONE_INDEX[SILENCE]] * frames
    for segment in segments:
        phone = to_arpabet(segment.phone, phoneset)
        if phone is None:
            continue
        first = max(0, frame_index(segment.onset - offset, frame_rate))
        last = min(frames, frame_index(segment.offset - offset, frame_rate))
        for t in range(first, last):
            labels[t] = PHONE_INDEX[phone]
    return labels

"""Text front end of a text-to-mel synthesizer: normalisation, sentence splitting, phonemes, ids.

`normalize_text` turns written English into the words a speaker would say (numbers, money,
times, abbreviations and symbols spelled out; lower case; sentence punctuation kept as prosody
marks). `Phonemizer` reads the words with espeak-ng and maps its phonemes to the ARPAbet set
of `vc.data.phones`; `text_to_ids` chains both and returns indices into `SYMBOLS`.

Everything is offline and deterministic; the only outside program is the `espeak-ng` binary.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import unicodedata

from vc.data.phones import ARPABET, PhoneSetError, espeak_word_phones
from vc.errors import VoicelabError

ARPABET_PHONES = tuple(ARPABET)  # vc.data.phones.PHONES without "sil"
PUNCTUATION = (",", ".", "?", "!")
SYMBOLS = ("<pad>", "<sil>", " ", *PUNCTUATION, *ARPABET_PHONES)
SYMBOL_INDEX = {s: i for i, s in enumerate(SYMBOLS)}
DEFAULT_MAX_CHARS = 1000


class TextError(VoicelabError, ValueError):
    """Text that cannot be spoken: empty, too long, or with nothing speakable in it."""


# ---------------------------------------------------------------------------------------------
# numbers

_ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
         "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
         "eighteen", "nineteen")
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_SCALES = ((10 ** 12, "trillion"), (10 ** 9, "billion"), (10 ** 6, "million"), (1000, "thousand"))
_ORDINAL_WORDS = {"one": "first", "two": "second", "three": "third", "five": "fifth",
                  "eight": "eighth", "nine": "ninth", "twelve": "twelfth"}


def _below_thousand(n: int) -> list[str]:
    words = []
    if n >= 100:
        words += [_ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        words.append(_TENS[n // 10])
        n %= 10
        if n:
            words.append(_ONES[n])
    elif n or not words:
        words.append(_ONES[n])
    return words


def number_to_words(n: int) -> str:
    """Cardinal words of a whole number: 1234 -> "one thousand two hundred thirty four".

    Numbers of a quadrillion or more are read digit by digit.
    """
    if n < 0:
        return "minus " + number_to_words(-n)
    if n >= 10 ** 15:
        return digits_to_words(str(n))
    words = []
    for value, name in _SCALES:
        if n >= value:
            words += _below_thousand(n // value) + [name]
            n %= value
    if n or not words:
        words += _below_thousand(n)
    return " ".join(words)


def ordinal_to_words(n: int) -> str:
    """Ordinal words: 21 -> "twenty first", 100 -> "one hundredth"."""
    words = number_to_words(n).split()
    last = words[-1]
    if last in _ORDINAL_WORDS:
        words[-1] = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def digits_to_words(digits: str) -> str:
    """Each digit said on its own: "05" -> "zero five"."""
    return " ".join(_ONES[int(d)] for d in digits if d.isdigit())


def year_to_words(year: int) -> str:
    """A year as said: 1990 -> "nineteen ninety", 1905 -> "nineteen oh five", 2005 -> "two
    thousand five", 2019 -> "twenty nineteen"."""
    if 2000 <= year <= 2009 or year % 1000 == 0:
        return number_to_words(year)
    high, low = divmod(year, 100)
    if low == 0:
        return number_to_words(high) + " hundred"
    if low < 10:
        return number_to_words(high) + " oh " + _ONES[low]
    return number_to_words(high) + " " + number_to_words(low)


def _decimal_words(text: str) -> str:
    whole, _, fraction = text.partition(".")
    return f"{number_to_words(int(whole or '0'))} point {digits_to_words(fraction)}"


# ---------------------------------------------------------------------------------------------
# normalisation

_CHAR_MAP = {"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
             "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u00ab": '"', "\u00bb": '"',
             "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": ", ",
             "\u2015": ", ", "\u2212": "-", "\u2026": "...", "\u00a0": " "}
_SYMBOL_WORDS = {"&": " and ", "+": " plus ", "@": " at ", "%": " percent ", "=": " equals "}
_KEPT = set(",.?!;:'")
# characters that are dropped silently (brackets, quotes, slashes, ...), as opposed to
# characters that are dropped because nothing here knows how to say them
_SILENT = set("\"()[]{}<>*_/\\|~^`#-")

_ABBREVIATIONS = {"mr": "mister", "mrs": "missus", "ms": "miss", "dr": "doctor", "jr": "junior",
                  "sr": "senior", "prof": "professor", "vs": "versus", "etc": "et cetera",
                  "mt": "mount", "no": "number", "ft": "feet", "approx": "approximately",
                  "jan": "january", "feb": "february", "apr": "april", "aug": "august",
                  "sept": "september", "sep": "september", "oct": "october", "nov": "november",
                  "dec": "december"}
_CURRENCIES = {"$": ("dollar", "dollars", "cent", "cents"), "£": ("pound", "pounds", "penny", "pence"),
               "€": ("euro", "euros", "cent", "cents"), "¥": ("yen", "yen", "sen", "sen")}
# words after a 4-digit number that make it a quantity, not a year
_UNITS = {"km", "m", "cm", "mm", "kg", "g", "mg", "lb", "lbs", "mb", "gb", "kb", "ml", "l", "hz",
          "khz", "w", "kw", "v", "meters", "metres", "miles", "feet", "people", "dollars", "euros",
          "pounds", "units", "times", "words", "pages", "items", "points", "calories", "steps"}


def _fold(text: str) -> tuple[str, list[str]]:
    """NFKC, ASCII punctuation, accents stripped; returns the text and the characters dropped."""
    text = unicodedata.normalize("NFKC", text)
    out, dropped = [], []
    for ch in text:
        ch = _CHAR_MAP.get(ch, ch)
        if len(ch) > 1 or ch.isascii() or ch in _CURRENCIES:
            out.append(ch)
            continue
        base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
        if base and base.isascii():
            out.append(base)
        elif ch.isspace():
            out.append(" ")
        else:
            out.append(" ")
            if ch not in dropped:
                dropped.append(ch)
    return "".join(out), dropped


def unspeakable_characters(text: str) -> list[str]:
    """The characters `normalize_text` drops because it cannot say them (CJK, emoji, ...), in
    order of first appearance."""
    return _fold(text)[1]


def _money(match: re.Match) -> str:
    one, many, sub_one, sub_many = _CURRENCIES[match.group(1)]
    whole = int(match.group(2).replace(",", ""))
    cents = match.group(3)
    scale = match.group(4)
    if scale:  # $5 million, $2.5 billion
        amount = _decimal_words(f"{whole}.{cents}") if cents else number_to_words(whole)
        return f" {amount} {scale.lower()} {many} "
    parts = []
    if whole or not cents or not int(cents):
        parts.append(f"{number_to_words(whole)} {one if whole == 1 else many}")
    if cents and int(cents):
        sub = int(cents.ljust(2, "0")[:2])
        parts.append(f"{number_to_words(sub)} {sub_one if sub == 1 else sub_many}")
    return " " + " ".join(parts) + " "


def _time(match: re.Match) -> str:
    hour, minute = int(match.group(1)), int(match.group(2))
    suffix = match.group(3)
    if minute == 0:
        words = number_to_words(hour) + ("" if suffix else " o'clock")
    elif minute < 10:
        words = f"{number_to_words(hour)} oh {_ONES[minute]}"
    else:
        words = f"{number_to_words(hour)} {number_to_words(minute)}"
    if suffix:
        words += " " + " ".join(suffix.lower().replace(".", ""))
    return f" {words} "


def _plain_number(match: re.Match) -> str:
    digits = match.group(0)
    following = match.string[match.end():match.end() + 12]
    n = int(digits)
    if len(digits) == 4 and 1100 <= n <= 2099:
        next_word = re.match(r"\s*([A-Za-z]+)", following)
        if not (next_word and next_word.group(1).lower() in _UNITS):
            return f" {year_to_words(n)} "
    if len(digits) > 1 and digits.startswith("0"):
        return f" {digits_to_words(digits)} "
    return f" {number_to_words(n)} "


def _abbreviation(match: re.Match) -> str:
    word = match.group(1)
    return f"{_ABBREVIATIONS[word.lower()]} "


def normalize_text(text: str) -> str:
    """Written English as it is said: lower case words plus the prosody marks . , ? ! ; :

    Numbers, money, percentages, times, ordinals, years, common abbreviations and the symbols
    & + @ are spelled out; other symbols and characters nothing here can say are dropped (see
    `unspeakable_characters`).

    Raises TextError for empty text, or text in which nothing speakable remains.
    """
    if not isinstance(text, str):
        raise TextError(f"text must be a str, not {type(text).__name__}")
    if not text.strip():
        raise TextError("no text to speak; type a sentence")
    out, dropped = _fold(text)

    # abbreviations (before numbers, so "No. 5" and "St. 3rd" work)
    out = re.sub(r"\bSt\.(?=\s+[A-Z])", "saint ", out)
    out = re.sub(r"\b[Ss]t\.", "street ", out)
    out = re.sub(r"\be\.\s?g\.", "for example ", out, flags=re.I)
    out = re.sub(r"\bi\.\s?e\.", "that is ", out, flags=re.I)
    out = re.sub(r"\bNo\.(?=\s*\d)", "number ", out)
    out = re.sub(r"\b(?i:etc)\.(?=\s*$|\s+[A-Z])", "et cetera.", out)  # ends a sentence
    names = "|".join(k for k in _ABBREVIATIONS if k != "no")
    out = re.sub(rf"\b({names})\.", _abbreviation, out, flags=re.I)
    out = re.sub(r"\b(mr|mrs|dr)\b(?=\s+[A-Z])", _abbreviation, out, flags=re.I)

    # numbers of every kind, most specific first
    out = re.sub(r"([$£€¥])\s?(\d[\d,]*)(?:\.(\d+))?(?:\s+(million|billion|trillion)\b)?",
                 _money, out, flags=re.I)
    out = re.sub(r"(\d+(?:\.\d+)?)\s?%", lambda m: f" {_number_text(m.group(1))} percent ", out)
    out = re.sub(r"\b(\d{1,2}):(\d{2})\b(?:\s*([ap]\.?m\.?)(?![a-z]))?", _time, out, flags=re.I)
    out = re.sub(r"\b(\d+)(st|nd|rd|th)\b", lambda m: f" {ordinal_to_words(int(m.group(1)))} ",
                 out, flags=re.I)
    out = re.sub(r"\b\d{1,3}(?:,\d{3})+(?:\.\d+)?\b",
                 lambda m: f" {_number_text(m.group(0).replace(',', ''))} ", out)
    out = re.sub(r"\b(\d{3})-(\d{3})-(\d{4})\b|\b(\d{3})-(\d{4})\b",  # phone numbers
                 lambda m: " " + ", ".join(digits_to_words(g) for g in m.groups() if g) + " ", out)
    out = re.sub(r"\b(1[1-9]\d\d|20\d\d)-(1[1-9]\d\d|20\d\d)\b",  # year ranges
                 lambda m: f" {year_to_words(int(m.group(1)))} to {year_to_words(int(m.group(2)))} ", out)
    out = re.sub(r"(?:(?<=\s)|^)-(?=\d)", " minus ", out)
    out = re.sub(r"\d*\.\d+", lambda m: f" {_decimal_words(m.group(0))} ", out)
    out = re.sub(r"\d+", _plain_number, out)

    # symbols
    for symbol, words in _SYMBOL_WORDS.items():
        out = out.replace(symbol, words)
    out = out.replace("...", ",")
    cleaned = []
    for ch in out:
        if ch.isascii() and ch.isalpha() or ch in _KEPT or ch.isspace():
            cleaned.append(ch)
        else:
            cleaned.append(" ")
            if ch not in _SILENT and not ch.isspace() and ch not in dropped:
                dropped.append(ch)
    out = "".join(cleaned).lower()

    # apostrophes only inside words; tidy punctuation and whitespace
    out = re.sub(r"(?<![a-z])'|'(?![a-z])", " ", out)
    out = re.sub(r"\s+([,.?!;:])", r"\1", out)
    out = re.sub(r"([,;:])[,;:]+", r"\1", out)
    out = re.sub(r"[,;:]+([.?!])", r"\1", out)
    out = re.sub(r"([.?!])[.?!]*", r"\1", out)
    out = re.sub(r"([,.?!;:])(?=[a-z])", r"\1 ", out)
    out = re.sub(r"\s+", " ", out).strip()
    out = re.sub(r"^[,.?!;:\s]+", "", out)
    if not re.search(r"[a-z]", out):
        what = f" (could not say: {' '.join(dropped)})" if dropped else ""
        raise TextError(f"nothing speakable in {text[:60]!r}{what}; use English words, numbers "
                        "or common symbols")
    return out


def _number_text(text: str) -> str:
    return _decimal_words(text) if "." in text else number_to_words(int(text))


# ---------------------------------------------------------------------------------------------
# sentences

_SENTENCE_END = re.compile(r"[.?!]+(?=\s|$)")
_NO_BREAK = set(_ABBREVIATIONS) | {"st", "e.g", "i.e", "a.m", "p.m"}


def split_sentences(text: str, max_chars: int = 200) -> list[str]:
    """Sentences of `text` (split after . ? ! followed by a space, not after a known
    abbreviation such as "Dr."); a sentence longer than `max_chars` is split further at the
    last , ; : before the limit, else at the last space."""
    if max_chars < 1:
        raise TextError(f"max_chars must be at least 1, got {max_chars}")
    sentences, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        before = re.search(r"([A-Za-z.]+)$", text[start:match.start()])
        if match.group(0) == "." and before and before.group(1).lower().rstrip(".") in _NO_BREAK:
            continue
        sentences.append(text[start:match.end()].strip())
        start = match.end()
    sentences.append(text[start:].strip())
    pieces = []
    for sentence in filter(None, sentences):
        pieces += _split_long(sentence, max_chars)
    return pieces


def _split_long(sentence: str, max_chars: int) -> list[str]:
    pieces = []
    while len(sentence) > max_chars:
        window = sentence[:max_chars + 1]
        cut = max((window.rfind(p) for p in ",;:"), default=-1)
        if cut >= max_chars // 2:
            cut += 1
        else:
            space = window.rfind(" ")
            cut = space if space > 0 else max_chars
        pieces.append(sentence[:cut].strip())
        sentence = sentence[cut:].strip()
    if sentence:
        pieces.append(sentence)
    return pieces


# ---------------------------------------------------------------------------------------------
# phonemes

_CHUNK = re.compile(r"([^,.?!;:]+)([,.?!;:]*)")


def cmudict_path():
    """pocketsphinx's copy of CMUdict (the aligner's dictionary), or None without pocketsphinx."""
    try:
        import pocketsphinx
    except ImportError:
        return None
    from pathlib import Path
    path = Path(pocketsphinx.__file__).parent / "model" / "en-us" / "cmudict-en-us.dict"
    return path if path.is_file() else None


class Lexicon:
    """Word -> ARPAbet phones from a CMUdict-format file (first pronunciation of each word).

    The synthesizer learnt from alignments made with pocketsphinx's CMUdict, so reading text
    with the same dictionary gives it the phones it knows (espeak-ng reduces vowels and drops
    r's where CMUdict keeps them). Loaded once per instance, on first use.
    """

    def __init__(self, path=None):
        import threading
        self.path = path if path is not None else cmudict_path()
        self._words: dict[str, list[str]] | None = None
        self._lock = threading.Lock()  # concurrent first requests read the file once

    @property
    def available(self) -> bool:
        return self.path is not None

    def load(self) -> "Lexicon":
        """Read the dictionary now (it is otherwise read on the first lookup)."""
        with self._lock:
            if self._words is None:
                self._words = {} if self.path is None else self._read(self.path)
        return self

    def get(self, word: str) -> list[str] | None:
        if self._words is None:
            self.load()
        return self._words.get(word)

    @staticmethod
    def _read(path) -> dict[str, list[str]]:
        words: dict[str, list[str]] = {}
        known = set(ARPABET)
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                fields = line.split()
                if len(fields) < 2 or "(" in fields[0]:
                    continue  # alternative pronunciations "word(2)" are left out
                phones = [p.rstrip("012").lower() for p in fields[1:]]
                if known.issuperset(phones):
                    words.setdefault(fields[0].lower(), phones)
        return words


class Phonemizer:
    """ARPAbet phones of English words, read by espeak-ng (or looked up in a lexicon first).

    `phonemes(text)` returns symbols of `SYMBOLS`: phones, " " between words (as espeak groups
    them: it may join a clitic such as "on the" into one word) and , . ? ! for the punctuation
    of the text (";" and ":" become ","). Give it normalised text (see `normalize_text`).

    Args:
        voice: the espeak-ng voice, e.g. "en-us" or "en-gb".
        timeout: seconds espeak-ng may take.
        lexicon: a `Lexicon` whose words are taken from it rather than from espeak-ng (which
            still reads the words it lacks); None: espeak-ng reads everything.
    """

    def __init__(self, voice: str = "en-us", timeout: float = 30.0, lexicon: Lexicon | None = None):
        self.voice = voice
        self.timeout = timeout
        self.lexicon = lexicon
        self._voice_checked = False

    def phonemes(self, text: str) -> list[str]:
        """Symbols (phones, " ", , . ? !) of `text`; raises TextError if espeak-ng is missing
        or says nothing for it."""
        chunks = []  # (words, punctuation symbol or "")
        for match in _CHUNK.finditer(text.lower()):
            words = re.sub(r"[^a-z0-9' ]+", " ", match.group(1)).strip()
            marks = match.group(2)
            mark = next((m for m in marks if m in "?!"), "." if "." in marks else "," if marks else "")
            if words:
                chunks.append((words, mark))
            elif mark and chunks and not chunks[-1][1]:
                chunks[-1] = (chunks[-1][0], mark)
        if not chunks:
            raise TextError(f"no words to phonemize in {text[:60]!r}; type a sentence")
        if self.lexicon is not None:
            spoken = self._with_lexicon([words for words, _ in chunks])
        else:
            lines = self._espeak([words for words, _ in chunks])
            spoken = [self._parse(line, words) for (words, _), line in zip(chunks, lines)]
        symbols: list[str] = []
        for (words, mark), phones in zip(chunks, spoken):
            if symbols and symbols[-1] != " ":
                symbols.append(" ")
            symbols += phones
            if mark:
                symbols.append(mark)
        if not any(s in SYMBOL_INDEX and s not in PUNCTUATION and s != " " for s in symbols):
            raise TextError(f"espeak-ng gave no phones for {text[:60]!r}")
        return symbols

    def _with_lexicon(self, chunks: list[str]) -> list[list[str]]:
        """Each chunk's symbols: lexicon words as listed, the others read by espeak-ng (one
        run for all of them)."""
        missing = sorted({w for chunk in chunks for w in chunk.split() if self.lexicon.get(w) is None})
        read = dict(zip(missing, (self._parse(line, word) for word, line in
                                  zip(missing, self._espeak(missing))))) if missing else {}
        out = []
        for chunk in chunks:
            symbols: list[str] = []
            for word in chunk.split():
                phones = self.lexicon.get(word) or read.get(word) or []
                if phones:
                    if symbols:
                        symbols.append(" ")
                    symbols += phones
            out.append(symbols)
        return out

    def _espeak(self, chunks: list[str]) -> list[str]:
        """espeak-ng's phoneme line for each chunk: one run with a chunk per input line; if its
        clauses do not line up with the chunks, one run per chunk."""
        if not shutil.which("espeak-ng"):
            raise TextError("phonemizing needs the espeak-ng program, which is not installed "
                            "(apt-get install espeak-ng)")
        if not self._voice_checked:
            self._check_voice()
        lines = self._run("\n".join(chunks)).splitlines()
        lines = [line for line in lines if line.strip()]
        if len(lines) == len(chunks):
            return lines
        return [" ".join(self._run(chunk).split()) for chunk in chunks]

    def _check_voice(self) -> None:
        """espeak-ng falls back to its default voice for an unknown name; refuse one instead."""
        result = subprocess.run(["espeak-ng", "--voices"], capture_output=True, text=True,
                                timeout=self.timeout)
        known = set()
        for row in result.stdout.splitlines()[1:]:
            fields = row.split()
            if len(fields) >= 5:
                known.update(f.lower() for f in (fields[1], fields[3], fields[4],
                                                 fields[4].rsplit("/", 1)[-1]))
        name = self.voice.split("+")[0].lower()  # "en-us+f3": voice plus variant
        if result.returncode == 0 and known and name not in known:
            english = sorted(v for v in known if v.startswith("en") and "/" not in v)[:8]
            raise TextError(f"espeak-ng has no voice {self.voice!r}; try one of {', '.join(english)}")
        self._voice_checked = True

    def _run(self, text: str) -> str:
        command = ["espeak-ng", "-q", "-x", "--sep=_", "-v", self.voice]
        try:
            result = subprocess.run(command, input=text, capture_output=True, text=True,
                                    timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise TextError(f"espeak-ng took over {self.timeout:g} s on {text[:60]!r}; "
                            "split the text into shorter sentences") from None
        if result.returncode != 0 or "not found" in result.stderr.lower():
            raise TextError(f"espeak-ng could not read text with voice {self.voice!r}: "
                            f"{result.stderr.strip() or 'exit code ' + str(result.returncode)}; "
                            "try voice='en-us'")
        return result.stdout

    @staticmethod
    def _parse(line: str, words: str) -> list[str]:
        line = re.sub(r"\([a-z-]+\)", " ", line)  # language switches such as (fr)
        symbols = []
        for word in line.split():
            try:
                phones = espeak_word_phones(word)
            except PhoneSetError as error:
                raise TextError(f"cannot phonemize {words[:60]!r}: {error}") from None
            if phones:
                if symbols:
                    symbols.append(" ")
                symbols += phones
        return symbols


# ---------------------------------------------------------------------------------------------
# ids

def symbols_to_ids(symbols: list[str]) -> list[int]:
    """Indices into `SYMBOLS`; raises TextError for a symbol not in the set."""
    try:
        return [SYMBOL_INDEX[s] for s in symbols]
    except KeyError as error:
        raise TextError(f"{error.args[0]!r} is not a synthesizer symbol; SYMBOLS lists them") from None


def ids_to_symbols(ids) -> list[str]:
    """The symbols of `SYMBOLS` at `ids`; raises TextError for an id out of range."""
    symbols = []
    for i in ids:
        i = int(i)
        if not 0 <= i < len(SYMBOLS):
            raise TextError(f"symbol id {i} is out of range; ids run from 0 to {len(SYMBOLS) - 1}")
        symbols.append(SYMBOLS[i])
    return symbols


def text_to_ids(text: str, max_chars: int = DEFAULT_MAX_CHARS, phonemizer: Phonemizer | None = None,
                voice: str = "en-us") -> list[int]:
    """Symbol ids of `text`: normalised, phonemized (espeak-ng), mapped to `SYMBOLS`.

    Raises TextError for empty text, text longer than `max_chars`, or nothing speakable.
    """
    if not isinstance(text, str):
        raise TextError(f"text must be a str, not {type(text).__name__}")
    if not text.strip():
        raise TextError("no text to speak; type a sentence")
    if len(text) > max_chars:
        raise TextError(f"the text is {len(text)} characters long, over the limit of {max_chars}; "
                        "split it with split_sentences or raise max_chars")
    phonemizer = phonemizer or Phonemizer(voice)
    return symbols_to_ids(phonemizer.phonemes(normalize_text(text)))

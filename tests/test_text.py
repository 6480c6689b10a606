"""Text front end: normalisation, sentence splitting, espeak-ng phonemes and symbol ids."""
from __future__ import annotations

import shutil

import pytest

from vc.data.phones import PHONES
from vc.errors import VoicelabError
from vc.text import (SYMBOLS, Lexicon, Phonemizer, TextError, cmudict_path, ids_to_symbols,
                     normalize_text, number_to_words, ordinal_to_words, split_sentences, symbols_to_ids,
                     text_to_ids, unspeakable_characters, year_to_words)

needs_espeak = pytest.mark.skipif(not shutil.which("espeak-ng"), reason="espeak-ng not installed")


@pytest.mark.parametrize("n, words", [
    (0, "zero"), (7, "seven"), (13, "thirteen"), (20, "twenty"), (42, "forty two"),
    (100, "one hundred"), (101, "one hundred one"), (999, "nine hundred ninety nine"),
    (1000, "one thousand"), (1234, "one thousand two hundred thirty four"),
    (1_000_000, "one million"), (2_000_305, "two million three hundred five"),
    (10 ** 12, "one trillion"), (-5, "minus five"),
])
def test_number_to_words(n, words):
    assert number_to_words(n) == words


@pytest.mark.parametrize("n, words", [(1, "first"), (2, "second"), (3, "third"), (5, "fifth"),
                                      (12, "twelfth"), (21, "twenty first"), (30, "thirtieth"),
                                      (100, "one hundredth"), (113, "one hundred thirteenth")])
def test_ordinal_to_words(n, words):
    assert ordinal_to_words(n) == words


@pytest.mark.parametrize("year, words", [(1990, "nineteen ninety"), (1905, "nineteen oh five"),
                                         (1900, "nineteen hundred"), (2005, "two thousand five"),
                                         (2000, "two thousand"), (2019, "twenty nineteen"),
                                         (1100, "eleven hundred")])
def test_year_to_words(year, words):
    assert year_to_words(year) == words


@pytest.mark.parametrize("text, spoken", [
    ("42", "forty two"),
    ("1,234", "one thousand two hundred thirty four"),
    ("1,234 people", "one thousand two hundred thirty four people"),
    ("3.5", "three point five"),
    ("0.25", "zero point two five"),
    ("21st", "twenty first"),
    ("the 2nd and 3rd of 4", "the second and third of four"),
    ("1990", "nineteen ninety"),
    ("in 2005.", "in two thousand five."),
    ("1500 km", "one thousand five hundred km"),
    ("2500", "two thousand five hundred"),
    ("1,990", "one thousand nine hundred ninety"),
    ("$5.50", "five dollars fifty cents"),
    ("$1", "one dollar"),
    ("$0.01", "one cent"),
    ("$1,000", "one thousand dollars"),
    ("$2.5 million", "two point five million dollars"),
    ("£3", "three pounds"),
    ("€1.50", "one euro fifty cents"),
    ("45%", "forty five percent"),
    ("2.5 %", "two point five percent"),
    ("3:30", "three thirty"),
    ("10:05", "ten oh five"),
    ("7:00", "seven o'clock"),
    ("9:15 pm", "nine fifteen p m"),
    ("-5 degrees", "minus five degrees"),
    ("007", "zero zero seven"),
    ("call 555-1234", "call five five five, one two three four"),
    ("from 1990-2000", "from nineteen ninety to two thousand"),
    ("on Jan. 5th, 2021.", "on january fifth, twenty twenty one."),
])
def test_numbers(text, spoken):
    assert normalize_text(text) == spoken


@pytest.mark.parametrize("text, spoken", [
    ("Dr. Smith", "doctor smith"),
    ("Mr. and Mrs. Jones", "mister and missus jones"),
    ("St. James", "saint james"),
    ("Baker St.", "baker street"),
    ("Bob Jr. said", "bob junior said"),
    ("apples, pears, etc. are fruit", "apples, pears, et cetera are fruit"),
    ("apples etc.", "apples et cetera."),
    ("cats vs. dogs", "cats versus dogs"),
    ("fruit, e.g. apples", "fruit, for example apples"),
    ("one, i.e. the first", "one, that is the first"),
    ("No. 5", "number five"),
])
def test_abbreviations(text, spoken):
    assert normalize_text(text) == spoken


@pytest.mark.parametrize("text, spoken", [
    ("A & B", "a and b"),
    ("2 + 2", "two plus two"),
    ("me @ home", "me at home"),
    ("Hello, world! Are you there? Yes; no: maybe.", "hello, world! are you there? yes; no: maybe."),
    ("(brackets) [and] *stars* #tag", "brackets and stars tag"),
    ("\u201cCurly\u201d \u2018quotes\u2019 don\u2019t", "curly quotes don't"),
    ("wait \u2014 what", "wait, what"),
    ("so\u2026 ok", "so, ok"),
    ("  lots \t of\n\nspace  ", "lots of space"),
    ("caf\u00e9 na\u00efve", "cafe naive"),
    ("\uff21\uff22\uff23", "abc"),  # full-width letters, by NFKC
    ("Really?!", "really?"),
    ("SHOUT", "shout"),
])
def test_symbols_and_punctuation(text, spoken):
    assert normalize_text(text) == spoken


def test_unspeakable_characters_are_dropped_and_reported():
    text = "hello \u4f60\u597d world \U0001F600"
    assert normalize_text(text) == "hello world"
    assert unspeakable_characters(text) == ["\u4f60", "\u597d", "\U0001F600"]
    assert unspeakable_characters("plain text") == []


def test_nothing_speakable_raises():
    with pytest.raises(TextError, match="nothing speakable.*\u4f60"):
        normalize_text("\u4f60\u597d \U0001F600")
    with pytest.raises(TextError, match="nothing speakable"):
        normalize_text("...")


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text_raises(text):
    with pytest.raises(TextError, match="no text to speak; type a sentence"):
        normalize_text(text)
    with pytest.raises(TextError, match="no text to speak"):
        text_to_ids(text)


def test_text_error_is_voicelab_error():
    assert issubclass(TextError, VoicelabError)


def test_split_sentences():
    text = "Dr. Smith paid 3.5 dollars. Was it enough? Yes! Mr. Jones agreed."
    assert split_sentences(text) == ["Dr. Smith paid 3.5 dollars.", "Was it enough?", "Yes!",
                                     "Mr. Jones agreed."]
    normalized = normalize_text(text)
    assert split_sentences(normalized) == ["doctor smith paid three point five dollars.",
                                           "was it enough?", "yes!", "mister jones agreed."]
    assert split_sentences("no final mark") == ["no final mark"]


def test_split_long_sentences_at_clause_marks():
    sentence = "one two three four five, six seven eight nine; ten eleven twelve."
    pieces = split_sentences(sentence, max_chars=30)
    assert pieces == ["one two three four five,", "six seven eight nine;", "ten eleven twelve."]
    assert all(len(p) <= 30 for p in pieces)
    words = " ".join(["word"] * 30)  # no clause marks: split at spaces
    pieces = split_sentences(words, max_chars=40)
    assert all(len(p) <= 40 for p in pieces) and " ".join(pieces) == words


def test_symbol_set():
    assert SYMBOLS[:7] == ("<pad>", "<sil>", " ", ",", ".", "?", "!")
    assert SYMBOLS[7:] == tuple(p for p in PHONES if p != "sil")
    assert len(set(SYMBOLS)) == len(SYMBOLS)


def test_ids_round_trip_and_errors():
    symbols = ["dh", "ah", " ", "k", "ae", "t", "."]
    assert ids_to_symbols(symbols_to_ids(symbols)) == symbols
    with pytest.raises(TextError, match="out of range"):
        ids_to_symbols([len(SYMBOLS)])
    with pytest.raises(TextError, match="not a synthesizer symbol"):
        symbols_to_ids(["xx"])


def test_too_long_text_raises():
    with pytest.raises(TextError, match="1001 characters.*limit of 1000"):
        text_to_ids("a" * 1001)
    with pytest.raises(TextError, match="limit of 10"):
        text_to_ids("hello there world", max_chars=10)


def _in_order(sequence, wanted):
    it = iter(sequence)
    return all(any(x == w for x in it) for w in wanted)


@needs_espeak
def test_phonemes_of_the_cat():
    phones = Phonemizer().phonemes("the cat")
    assert _in_order(phones, ["dh", "ah", " ", "k", "ae", "t"])
    assert all(p in SYMBOLS for p in phones)


@needs_espeak
def test_lexicon_words_are_pronounced_as_the_aligner_does_and_others_by_espeak(tmp_path):
    lexicon = tmp_path / "tiny.dict"
    lexicon.write_text("there DH EH1 R\nthere(2) DH ER0\ncat K AE1 T\nbad X Y\n")
    phonemizer = Phonemizer(lexicon=Lexicon(lexicon))
    assert phonemizer.phonemes("there, cat.") == ["dh", "eh", "r", ",", " ", "k", "ae", "t", "."]
    assert Phonemizer().phonemes("there")[-1] != "r"  # espeak-ng's General American drops it
    mixed = phonemizer.phonemes("cat zorblax")  # the word the lexicon lacks goes to espeak-ng
    assert mixed[:4] == ["k", "ae", "t", " "] and mixed[4] == "z"
    assert Lexicon(lexicon).get("bad") is None  # phones outside the set are left out
    if cmudict_path() is not None:
        assert Lexicon().get("doesn't") == ["d", "ah", "z", "ah", "n", "t"]


@needs_espeak
def test_punctuation_symbols_preserved():
    phones = Phonemizer().phonemes("the cat, sat. really? yes!")
    marks = [p for p in phones if p in (",", ".", "?", "!")]
    assert marks == [",", ".", "?", "!"]
    assert phones[-1] == "!"
    assert "sil" not in phones and "<sil>" not in phones
    # ; and : are pauses, mapped to ","
    assert [p for p in Phonemizer().phonemes("one; two: three") if p in ",.?!"] == [",", ","]


@needs_espeak
def test_text_to_ids_end_to_end():
    ids = text_to_ids("Dr. Smith paid $5.")
    symbols = ids_to_symbols(ids)
    assert all(isinstance(i, int) for i in ids)
    assert symbols[-1] == "."
    assert _in_order(symbols, ["d", "aa", "k", "t", "er", " ", "s", "m", "ih", "th", " ", "p",
                               "ey", "d", " ", "f", "ay", "v", " ", "d", "aa", "l", "er", "z"])
    assert text_to_ids("Hi \U0001F600 there.") == text_to_ids("Hi there.")


@needs_espeak
def test_bad_voice_raises():
    with pytest.raises(TextError, match="no voice 'no-such-voice'; try one of .*en-us"):
        Phonemizer(voice="no-such-voice").phonemes("hello")


@needs_espeak
def test_long_clause_that_espeak_splits_still_lines_up():
    text = " ".join(["hello there"] * 150) + ", and then. ok"
    phones = Phonemizer().phonemes(text)
    assert [p for p in phones if p in ",.?!"] == [",", "."]
    assert phones[-3:] == ["ow", "k", "ey"]


def test_missing_espeak_raises(monkeypatch):
    monkeypatch.setattr("vc.text.shutil.which", lambda name: None)
    with pytest.raises(TextError, match="apt-get install espeak-ng"):
        Phonemizer().phonemes("hello")

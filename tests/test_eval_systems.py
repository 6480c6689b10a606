"""The target ceiling's WER rule on hand-made trials: counted only where it reads the source sentence."""
from __future__ import annotations

import pytest

from eval.protocol import Trial, same_sentence, sentence_words
from eval.systems import SourceBaseline, TargetCeiling

SOURCE_TEXT = "Please call Stella, and ask her to bring these things."


def _trial(parallel: str | None = None, parallel_text: str = "", source_text: str = SOURCE_TEXT) -> Trial:
    return Trial("t1", "src/p225_002.wav", "p225", "p226", ("ref/p226_003.wav", "ref/p226_004.wav"),
                 source_text, parallel, parallel_text=parallel_text)


@pytest.fixture(scope="module")
def ceiling() -> TargetCeiling:
    return TargetCeiling(sample_rate=16000)


def test_parallel_reading_of_the_same_sentence_is_counted(ceiling):
    same = _trial("ref/p226_002.wav", "please call Stella -- and ask her to bring these   things")
    assert ceiling.expected_text(same) == SOURCE_TEXT
    assert ceiling.references_for(same) == same.reference_paths  # it plays the parallel clip, not a reference


def test_parallel_with_another_transcript_is_not_counted(ceiling):
    # e.g. a corpus whose sentence ids pair readings that differ in their words
    assert ceiling.expected_text(_trial("ref/p226_002.wav", "Please call Stella.")) == ""


def test_no_parallel_means_the_last_reference_is_played_and_not_counted(ceiling):
    trial = _trial()
    assert ceiling.expected_text(trial) == ""
    assert list(ceiling.references_for(trial)) == [trial.reference_paths[0]]
    assert SourceBaseline().expected_text(trial) == SOURCE_TEXT  # the source itself always says it


def test_parallel_without_its_transcript_trusts_the_protocol(ceiling):
    assert ceiling.expected_text(_trial("ref/p226_002.wav")) == SOURCE_TEXT
    assert ceiling.expected_text(_trial("ref/p226_002.wav", source_text="")) == ""


def test_sentence_normalisation():
    assert sentence_words("  Mr. Smith's CAR -- 42 km!\n") == "mr smith's car 42 km"
    assert same_sentence("Hello, world.", "hello world") and not same_sentence("", "")
    assert not same_sentence("Hello world.", "Hello, wide world.")


def test_system_options_after_the_vocoder():
    from eval.systems import describe_converter_options, parse_converter_options
    from vc.phone_matching import PhoneMeanMatching

    options = parse_converter_options("transcript+phonematch:prior_frames=10+knn:k=2")
    assert options["transcript"].name == "whisper-base" and options["knn"].k == 2
    assert options["phone_matching"] == PhoneMeanMatching(prior_frames=10.0)
    words, identity = describe_converter_options(options)
    assert "whisper-base transcript" in words and "prior 10 frames" in words and len(identity) == 3
    assert parse_converter_options("") == {}
    quick = parse_converter_options("encphones+phonematch")  # loads nothing until a clip comes
    assert quick["transcript"].name == "whisper-encoder:whisper-phones"
    words, identity = describe_converter_options(quick)
    assert "read from Whisper's encoder" in words and "bigram weight 0.3" in words
    hybrid = parse_converter_options("encphones+transcript:base")["transcript"]  # both: the head with a hint
    assert hybrid.name == "whisper-base+whisper-encoder:whisper-phones" and hybrid.hint_weight == 4.0
    assert "leaning toward the whisper-base transcript" in describe_converter_options({"transcript": hybrid})[0]
    assert describe_converter_options({"transcript": hybrid})[1] != identity
    smooth = parse_converter_options("phonematch:prior_frames=10,smooth_frames=5,match_spread=0")["phone_matching"]
    assert smooth == PhoneMeanMatching(prior_frames=10.0, smooth_frames=5, match_spread=False)
    assert "smoothed over 5 frames" in describe_converter_options({"phone_matching": smooth})[0]
    for bad, message in [("transcript+transcript", "twice"), ("encphones+encphones", "twice"), ("phonematch:frames=3", "prior_frames=FLOAT"),
                         ("phonematch:smooth_frames=x", "not a whole number"),
                         ("phonematch:match_spread=2", "not 0 or 1"), ("knn:k=x", "not a whole number"), ("phonematch:smooth_frames=0", "at least 1"),
                         ("reverb", "unknown system option 'reverb'"), ("knn:q=1", "bad kNN setting")]:
        with pytest.raises(ValueError, match=message):
            parse_converter_options(bad)


def test_cloners_and_converters_take_an_adaptation_option():
    from eval.systems import describe_converter_options, parse_converter_options
    from vc.adaptation import ReferenceAdaptation

    options = parse_converter_options("phonematch+adapt:steps=5,interpolation=1")
    assert options["adaptation"] == ReferenceAdaptation(steps=5, interpolation=1.0)
    assert "5 steps" in describe_converter_options(options)[0]
    assert parse_converter_options("adapt")["adaptation"] == ReferenceAdaptation()
    assert "adaptation" in parse_converter_options("transcript+adapt")
    learning = parse_converter_options("adapt:modules=decoder.out/decoder.postnet")["adaptation"]
    assert learning.modules == ("decoder.out", "decoder.postnet")
    assert "decoder.out, decoder.postnet" in describe_converter_options({"adaptation": learning})[0]
    with pytest.raises(ValueError, match="module names"):
        parse_converter_options("adapt:modules=decoder//out")
    with pytest.raises(ValueError, match="twice"):
        parse_converter_options("adapt+adapt")
    with pytest.raises(ValueError, match="steps must be"):
        parse_converter_options("adapt:steps=0")

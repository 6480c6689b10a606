"""Speech data: corpus readers, manifests, speaker splits, and the synthetic corpus builder.

    from vc.data import read_corpus, read_corpora, split_by_speaker
    utts = read_corpora(["../shared/real-speech/librispeech", "synthetic/"])
    train, test = split_by_speaker(utts, test_fraction=0.2, seed=0)

Command line: python -m vc.data build-corpus | describe | speaker-report (see --help).
"""

from vc.data.manifest import read_manifest, write_manifest
from vc.data.readers import (
    choose_test_speakers,
    detect_layout,
    read_corpora,
    read_corpus,
    read_libri,
    read_ljspeech,
    read_speaker_folders,
    read_vctk,
    speakers_of,
    split_by_speaker,
)
from vc.data.sentences import SentenceGenerator, generate_sentences
from vc.data.utterance import Segment, Utterance

__all__ = [
    "Segment", "Utterance", "read_corpus", "read_corpora", "detect_layout", "read_vctk", "read_libri",
    "read_ljspeech", "read_speaker_folders", "read_manifest", "write_manifest", "split_by_speaker",
    "choose_test_speakers",
    "speakers_of", "SentenceGenerator", "generate_sentences", "build_corpus",
]


def build_corpus(*args, **kwargs):
    """See `vc.data.build.build_corpus` (imported on use: it needs the synthesis engines' helpers)."""
    from vc.data.build import build_corpus as _build

    return _build(*args, **kwargs)

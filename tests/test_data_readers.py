"""Corpus readers on the real speech beside the checkout, and on small trees built in tmp_path."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vc.data import (Segment, Utterance, detect_layout, generate_sentences, read_corpora, read_corpus,
                     read_ljspeech, read_manifest, speakers_of, split_by_speaker, write_manifest)
from vc.data.__main__ import main as data_cli
from vc.errors import VoicelabError


def _real_speech_root() -> Path:
    default = Path(__file__).resolve().parents[1].parent / "shared" / "real-speech"
    return Path(os.environ.get("VOICELAB_REAL_SPEECH", default))


@pytest.fixture(scope="module")
def real() -> Path:
    root = _real_speech_root()
    if not (root / "librispeech").is_dir() or not (root / "vctk").is_dir():
        pytest.skip(f"real speech not found at {root} (needs librispeech/ and vctk/); set VOICELAB_REAL_SPEECH")
    return root


def _tone(path: Path, seconds: float = 0.3, rate: int = 16000) -> Path:
    """A short real audio file (readers do not decode, but the files should be genuine)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    sf.write(str(path), 0.3 * np.sin(2 * np.pi * 220 * t), rate)
    return path


# ------------------------------------------------------------------------------ real corpora


def test_librispeech_flat_folder(real):
    utts = read_corpus(real / "librispeech" / "train-clean-100")
    assert len(utts) == 251 and len(speakers_of(utts)) == 251
    first = next(u for u in utts if u.path.name == "19-198-0000.flac")
    assert first.speaker == "19" and first.corpus == "librispeech" and first.text is None


def test_librispeech_speaker_folders_and_root(real):
    test_other = read_corpus(real / "librispeech" / "test-other")
    assert speakers_of(test_other) == {s: 10 for s in ("1688", "1998", "2033", "2414", "367")}
    whole = read_corpus(real / "librispeech")
    assert len(whole) == 301 and len(speakers_of(whole)) == 256


def test_vctk_with_transcripts(real):
    utts = read_corpus(real / "vctk")
    assert speakers_of(utts) == {"p225": 10, "p226": 10}
    assert all(u.text for u in utts) and all(u.corpus == "vctk" for u in utts)
    by_id = {u.utt_id: u for u in utts}
    assert by_id["p225_003"].text.startswith("Six spoons of fresh snow peas")
    # Same utterance number, same sentence: the parallel pairs the README promises.
    assert by_id["p225_008"].text == by_id["p226_008"].text


def test_ljspeech_subset_with_normalised_text(real):
    if not (real / "ljspeech" / "metadata.csv").is_file():
        pytest.skip(f"no ljspeech/ in {real}")
    utts = read_corpus(real / "ljspeech")
    assert detect_layout(real / "ljspeech") == "ljspeech"
    assert len(utts) == 483 and speakers_of(utts) == {"LJ": 483}
    assert all(u.corpus == "ljspeech" and u.text and u.extra["gender"] == "F" for u in utts)
    assert all(u.path.suffix == ".flac" and u.path.parent.name == "wavs" for u in utts)
    rows = {line.split("|")[0]: line.split("|") for line in
            (real / "ljspeech" / "metadata.csv").read_text(encoding="utf-8").splitlines()}
    spelled = [u for u in utts if u.text != u.extra["raw_text"]]  # numbers and abbreviations spelled out
    assert spelled and all((u.extra["raw_text"], u.text) == (rows[u.utt_id][1], rows[u.utt_id][2]) for u in utts)
    assert read_corpus(real / "ljspeech" / "metadata.csv") == utts  # the metadata file itself works too


def test_real_speech_root_and_mixing(real):
    everything = read_corpus(real)  # a folder of corpora
    speakers = speakers_of(everything)
    has_lj = (real / "ljspeech").is_dir()
    assert len(speakers) == 258 + has_lj and ("ljspeech:LJ" in speakers) == has_lj
    assert speakers.get("ljspeech:LJ", 483) == 483 and not any(s.startswith("folder:") for s in speakers)
    mixed = read_corpora([real / "librispeech" / "train-clean-100", real / "vctk"])
    speakers = speakers_of(mixed)
    assert len(speakers) == 253 and "librispeech:19" in speakers and "vctk:p225" in speakers
    assert {u.corpus for u in mixed} == {"librispeech", "vctk"}


def test_describe_cli(real, capsys):
    assert data_cli(["describe", str(real / "vctk")]) == 0
    out = capsys.readouterr().out
    assert "20 utterances, 2 speakers" in out and "with text: 20" in out


# --------------------------------------------------------------------------- layouts in tmp


def test_vctk_092_layout_keeps_one_microphone(tmp_path):
    root = tmp_path / "VCTK"
    for mic in ("mic1", "mic2"):
        _tone(root / "wav48_silence_trimmed" / "p300" / f"p300_001_{mic}.flac")
    _tone(root / "wav48_silence_trimmed" / "p301" / "p301_002_mic1.flac")
    (root / "txt" / "p300").mkdir(parents=True)
    (root / "txt" / "p300" / "p300_001.txt").write_text("Please call Stella.\n")
    utts = read_corpus(root)
    assert [(u.speaker, u.path.name, u.text) for u in utts] == [
        ("p300", "p300_001_mic1.flac", "Please call Stella."), ("p301", "p301_002_mic1.flac", None)]


def test_librispeech_and_libritts_nested(tmp_path):
    libri = tmp_path / "LibriSpeech" / "dev-clean"
    _tone(libri / "84" / "121123" / "84-121123-0000.flac")
    _tone(libri / "84" / "121123" / "84-121123-0001.flac")
    (libri / "84" / "121123" / "84-121123.trans.txt").write_text("84-121123-0000 GO DO YOU HEAR\n84-121123-0001 BUT IN LESS\n")
    utts = read_corpus(tmp_path / "LibriSpeech")
    assert [(u.speaker, u.text) for u in utts] == [("84", "GO DO YOU HEAR"), ("84", "BUT IN LESS")]

    tts = tmp_path / "LibriTTS" / "train-clean-100" / "19" / "198"
    _tone(tts / "19_198_000000_000002.wav", rate=24000)
    (tts / "19_198_000000_000002.normalized.txt").write_text("Hello, world.")
    (utt,) = read_corpus(tmp_path / "LibriTTS")
    assert (utt.speaker, utt.text, utt.corpus) == ("19", "Hello, world.", "libritts")


def test_ljspeech_layout_two_columns_and_missing_audio(tmp_path):
    root = tmp_path / "LJSpeech-1.1"
    _tone(root / "wavs" / "LJ001-0001.wav", rate=22050)
    _tone(root / "wavs" / "LJ001-0003.wav", rate=22050)
    (root / "metadata.csv").write_text("LJ001-0001|Printing, in 1476.\n"
                                       "LJ001-0002|This clip was not copied.\n\n"
                                       "LJ001-0003|Mr. Caxton|Mister Caxton\n", encoding="utf-8")
    assert detect_layout(root) == "ljspeech" and detect_layout(tmp_path) == "collection"
    utts = read_corpus(root)
    assert [(u.utt_id, u.speaker, u.text, u.extra["raw_text"]) for u in utts] == [
        ("LJ001-0001", "LJ", "Printing, in 1476.", "Printing, in 1476."),  # no third column: the raw text
        ("LJ001-0003", "LJ", "Mister Caxton", "Mr. Caxton")]
    (mixed,) = {u.speaker for u in read_corpus(tmp_path)}  # a folder of corpora keeps it as one speaker
    assert mixed == "ljspeech:LJ"

    (root / "wavs" / "LJ001-0003.wav").rename(root / "wavs" / "LJ001-0003.flac")
    assert [u.path.name for u in read_ljspeech(root, speaker="linda")] == ["LJ001-0001.wav", "LJ001-0003.flac"]
    (root / "metadata.csv").write_text("LJ009-0001|Nothing here has audio.\n")
    with pytest.raises(VoicelabError, match=r"none of the 1 clips listed in .*metadata\.csv has its audio"):
        read_corpus(root)
    (root / "metadata.csv").write_text("LJ001-0001|one|two\nLJ001-0003|a|b|c|d\n")
    with pytest.raises(VoicelabError, match=r"metadata\.csv line 2: expected ID\|transcription"):
        read_corpus(root)
    (root / "metadata.csv").write_text("LJ001-0001|one\nLJ001-0001|again\n")
    with pytest.raises(VoicelabError, match="line 2: id LJ001-0001 was already given on line 1"):
        read_corpus(root)


def test_speaker_folders_any_extension(tmp_path):
    _tone(tmp_path / "alice" / "a.wav")
    _tone(tmp_path / "alice" / "session2" / "b.flac")
    _tone(tmp_path / "bob" / "c.ogg")
    (tmp_path / "bob" / "c.txt").write_text("bob speaks\n")
    utts = read_corpus(tmp_path)
    assert speakers_of(utts) == {"alice": 2, "bob": 1}
    assert {u.utt_id: u.text for u in utts} == {"a": None, "b": None, "c": "bob speaks"}


def test_clear_errors_for_unusable_input(tmp_path):
    with pytest.raises(VoicelabError, match="does not exist"):
        read_corpus(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VoicelabError, match="no audio files"):
        read_corpus(tmp_path / "empty")
    _tone(tmp_path / "loose" / "recording.wav")
    with pytest.raises(VoicelabError, match="sub-folder named"):
        read_corpus(tmp_path / "loose")
    bad = tmp_path / "bad.csv"
    bad.write_text("file,who\nx.wav,a\n")
    with pytest.raises(VoicelabError, match="path and speaker"):
        read_corpus(bad)


# ------------------------------------------------------------------------- manifests, splits


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_manifest_round_trip(tmp_path, suffix):
    wav = _tone(tmp_path / "audio" / "s1" / "u1.wav")
    other = _tone(tmp_path / "audio" / "s2" / "u2.wav")
    utts = [
        Utterance(wav, "s1", "a short line, with a comma", (Segment(0.0, 0.1, "pau"), Segment(0.1, 0.3, "ah")), "mine"),
        Utterance(other, "s2", None, None, "mine"),
    ]
    manifest = write_manifest(utts, tmp_path / f"list{suffix}")
    first_line = manifest.read_text().splitlines()[1 if suffix == ".csv" else 0]
    assert "audio/s1/u1.wav" in first_line  # stored relative to the manifest
    back = read_corpus(manifest)
    assert back == utts
    assert back[0].alignment[1] == Segment(0.1, 0.3, "ah")


def test_manifest_rejects_bad_alignment_and_missing_audio(tmp_path):
    _tone(tmp_path / "a.wav")
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"path": "a.wav", "speaker": "x", "alignment": [[0.5, 0.2, "aa"]]}) + "\n")
    with pytest.raises(VoicelabError, match="onset"):
        read_manifest(path)
    path.write_text(json.dumps({"path": "gone.wav", "speaker": "x"}) + "\n")
    with pytest.raises(VoicelabError, match="does not exist"):
        read_manifest(path)


def test_split_by_speaker_is_disjoint_and_seeded(tmp_path):
    utts = [Utterance(tmp_path / f"{s}_{i}.wav", f"spk{s}", None, None, "x") for s in range(10) for i in range(3)]
    train, test = split_by_speaker(utts, test_fraction=0.2, seed=4)
    assert len(train) + len(test) == len(utts)
    assert not {u.speaker for u in train} & {u.speaker for u in test}
    assert len({u.speaker for u in test}) == 2
    assert split_by_speaker(utts, 0.2, seed=4) == (train, test)
    other_seeds = {tuple(sorted({u.speaker for u in split_by_speaker(utts, 0.2, seed=s)[1]})) for s in range(6)}
    assert len(other_seeds) > 1  # the seed matters
    with pytest.raises(VoicelabError, match="at least 2 speakers"):
        split_by_speaker(utts[:3], 0.5)


def test_split_keeps_shifted_copies_with_their_original_speaker(tmp_path):
    plain = [Utterance(tmp_path / f"{s}.wav", f"spk{s}", None, None, "x") for s in range(10)]
    shifted = [Utterance(tmp_path / f"{s}{c:+d}c.wav", f"spk{s}{c:+d}c", None, None, "x",
                         extra={"shifted_from": f"spk{s}"}) for s in range(10) for c in (-200, 200)]
    train, test = split_by_speaker(plain + shifted, test_fraction=0.2, seed=4)
    assert split_by_speaker(plain, test_fraction=0.2, seed=4)[1] == [u for u in test if "c" not in u.speaker[3:]]
    roots = lambda utts: {u.extra.get("shifted_from", u.speaker) for u in utts}
    assert len(roots(test)) == 2 and not roots(train) & roots(test)
    assert len(test) == 6  # each test speaker with both of its shifted copies


def test_shifted_copies_read_from_their_own_manifest_still_split_with_their_original(tmp_path):
    silence = np.zeros(1600, dtype="float32")
    originals, copies = [], []
    for s in range(10):
        sf.write(tmp_path / f"{s}.wav", silence, 16000)
        originals.append({"path": f"{s}.wav", "speaker": f"spk{s}", "corpus": "librispeech"})
        for c in (-200, 200):
            sf.write(tmp_path / f"{s}{c:+d}c.wav", silence, 16000)
            copies.append({"path": f"{s}{c:+d}c.wav", "speaker": f"spk{s}{c:+d}c", "corpus": "librispeech",
                           "shifted_from": f"spk{s}"})
    for name, rows in (("real.jsonl", originals), ("shifted.jsonl", copies)):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    mixed = read_corpora([tmp_path / "real.jsonl", tmp_path / "shifted.jsonl"])
    speakers = {u.speaker for u in mixed}
    assert all(u.extra["shifted_from"] in speakers for u in mixed if "shifted_from" in u.extra)
    train, test = split_by_speaker(mixed, test_fraction=0.2, seed=4)
    roots = lambda utts: {u.extra.get("shifted_from", u.speaker) for u in utts}
    assert len(roots(test)) == 2 and not roots(train) & roots(test) and len(test) == 6


def test_two_manifests_of_one_name_get_their_folders_in_the_corpus_names(tmp_path):
    for folder in ("shifted-a", "shifted-b"):
        (tmp_path / folder).mkdir()
        sf.write(tmp_path / folder / "x.wav", np.zeros(1600, dtype="float32"), 16000)
        (tmp_path / folder / "manifest.jsonl").write_text(json.dumps({"path": "x.wav", "speaker": "s1", "corpus": "vctk"}) + "\n")
    mixed = read_corpora([tmp_path / "shifted-a" / "manifest.jsonl", tmp_path / "shifted-b" / "manifest.jsonl"])
    assert sorted(u.speaker for u in mixed) == ["vctk-shifted-a-manifest.jsonl:s1", "vctk-shifted-b-manifest.jsonl:s1"]


# ------------------------------------------------------------------------------- sentences


def test_sentence_generator_is_deterministic_and_unique():
    first = generate_sentences(400, seed=11)
    assert first == generate_sentences(400, seed=11)
    assert len(set(first)) == 400
    assert generate_sentences(50, seed=11) == first[:50]
    assert generate_sentences(50, seed=12) != first[:50]
    for sentence in first:
        assert sentence[0].isupper() and sentence[-1] in ".?" and not any(ch.isdigit() for ch in sentence)
        assert 5 <= len(sentence.split()) <= 25

"""Evaluation protocols built for real: on a small hand-made parallel corpus with a test split
and genders, on the held-out LibriSpeech and VCTK speakers (and LJSpeech) of ../shared/real-speech,
and folder protocols (every source with every reference voice) on folders made in tmp_path."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from eval.__main__ import main as eval_cli
from eval.folder_protocol import build_folder_protocol, read_texts
from eval.protocol import Protocol, ProtocolError, Trial, build_protocol, build_real_speech_protocol
from vc.data import read_corpus

REPO = Path(__file__).resolve().parents[1]
SPEAKERS = ("ann", "bob", "cat", "dan", "eve", "fred")  # F M F M F M
TEST_SPLIT = ("eve", "fred", "dan")
# What ../shared/real-speech/README.md and SPEAKERS.TXT say about the held-out readers.
LIBRI_GENDERS = {"367": "F", "1998": "F", "1688": "M", "2033": "M", "2414": "M"}


def make_corpus(root: Path, genders: bool = True, parallel: int = 3, own: int = 2) -> Path:
    """A manifest corpus like `build-corpus` writes: every speaker reads `parallel` shared
    sentences (same sentence_id and text) and `own` sentences of its own; 0.2 s wavs."""
    rows, rng = [], np.random.default_rng(0)
    for n, speaker in enumerate(SPEAKERS):
        sentences = [(f"par{j:04d}", f"shared sentence number {j}.", True) for j in range(1, parallel + 1)]
        sentences += [(f"sen{n * own + j:05d}", f"{speaker} says thing {j}.", False) for j in range(1, own + 1)]
        for sentence_id, text, is_parallel in sentences:
            rel = f"wavs/{speaker}/{speaker}_{sentence_id}.wav"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            sf.write(root / rel, (0.1 * rng.standard_normal(3200)).astype(np.float32), 16000)
            row = {"path": rel, "speaker": speaker, "text": text, "sentence_id": sentence_id,
                   "parallel": is_parallel, "split": "test" if speaker in TEST_SPLIT else "train",
                   "corpus": "synthetic"}
            if genders:
                row["gender"] = "female" if n % 2 == 0 else "male"
            rows.append(row)
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("protocol") / "synth")


@pytest.fixture(scope="module")
def utterances(corpus):
    return read_corpus(corpus)


def check_trials(protocol: Protocol, utterances, k: int) -> None:
    """The invariants every protocol keeps, checked against the corpus records."""
    record = {u.path.resolve(): u for u in utterances}
    assert len({t.trial_id for t in protocol}) == len(protocol)
    for trial in protocol:
        source = record[trial.source_path.resolve()]
        assert trial.source_speaker == source.speaker != trial.target_speaker
        assert trial.source_text == (source.text or "")
        assert len(trial.reference_paths) == k == len(set(trial.reference_paths))
        for ref in trial.reference_paths:
            assert record[ref.resolve()].speaker == trial.target_speaker
            assert ref not in (trial.source_path, trial.parallel_path)
        if trial.parallel_path is not None:
            parallel = record[trial.parallel_path.resolve()]
            assert parallel.speaker == trial.target_speaker and trial.parallel_text == (parallel.text or "")
            if "sentence_id" in source.extra:
                assert parallel.extra["sentence_id"] == source.extra["sentence_id"] == trial.sentence_id
            else:
                assert parallel.text == source.text
        else:
            assert trial.parallel_text == ""
        if source.text:  # no reference reads the source's sentence
            assert all(record[r.resolve()].text != source.text for r in trial.reference_paths)


def test_deterministic_for_a_seed_and_different_for_another(utterances):
    first = build_protocol(utterances, trials=20, seed=1)
    assert build_protocol(list(reversed(utterances)), trials=20, seed=1) == first  # input order is irrelevant
    other = build_protocol(utterances, trials=20, seed=2)
    assert [(t.source_path, t.target_speaker) for t in other] != [(t.source_path, t.target_speaker) for t in first]
    check_trials(first, utterances, k=2)
    check_trials(other, utterances, k=2)


def test_round_robin_spreads_trials_and_prefers_parallel_sources(utterances):
    pairs = len(SPEAKERS) * (len(SPEAKERS) - 1)
    protocol = build_protocol(utterances, trials=2 * pairs, seed=0, references_per_target=3)
    check_trials(protocol, utterances, k=3)
    assert set(Counter((t.source_speaker, t.target_speaker) for t in protocol).values()) == {2}
    # Every pair reads shared sentences, so every trial has the target's parallel utterance.
    assert all(t.parallel_path is not None for t in protocol)
    assert protocol.metadata["parallel_trials"] == len(protocol)
    # A partial sweep still keeps each speaker's share within one of the others'.
    part = build_protocol(utterances, trials=9, seed=5)
    for counts in (Counter(t.source_speaker for t in part), Counter(t.target_speaker for t in part)):
        assert max(counts.values()) - min(counts.values()) <= 1 and len(counts) == len(SPEAKERS)


def test_unseen_only_uses_test_split_or_named_speakers(utterances):
    protocol = build_protocol(utterances, trials=12, seed=0, unseen_only=True)
    check_trials(protocol, utterances, k=2)
    used = {t.source_speaker for t in protocol} | {t.target_speaker for t in protocol}
    assert used == set(TEST_SPLIT)
    named = build_protocol(utterances, trials=12, seed=0, unseen_only=True, unseen_speakers=["ann"])
    assert {t.source_speaker for t in named} | {t.target_speaker for t in named} == {*TEST_SPLIT, "ann"}
    with pytest.raises(ValueError, match="nobody"):
        build_protocol(utterances, trials=2, seed=0, unseen_only=True, unseen_speakers=["nobody"])


def test_cross_gender_pairs_differ_in_gender(utterances):
    gender = {s: "F" if i % 2 == 0 else "M" for i, s in enumerate(SPEAKERS)}
    protocol = build_protocol(utterances, trials=18, seed=3, cross_gender=True)
    check_trials(protocol, utterances, k=2)
    assert len({(t.source_speaker, t.target_speaker) for t in protocol}) == 18  # all 3 x 3 x 2 pairs
    for trial in protocol:
        assert gender[trial.source_speaker] != gender[trial.target_speaker]
        assert (trial.source_gender, trial.target_gender) == (gender[trial.source_speaker], gender[trial.target_speaker])


def test_cross_gender_without_genders_says_where_genders_come_from(tmp_path):
    plain = read_corpus(make_corpus(tmp_path / "plain", genders=False))
    with pytest.raises(ValueError, match=r"(?s)cross_gender needs speaker genders.*synthetic.*SPEAKERS.TXT.*speaker-info"):
        build_protocol(plain, trials=4, seed=0, cross_gender=True)


def test_too_little_data_says_what_was_found_and_needed(utterances):
    with pytest.raises(ValueError, match=r"asked for 1000 trials but only 150 distinct .*6 speakers with 30 utterances"):
        build_protocol(utterances, trials=1000, seed=0)  # 6 speakers x 5 sources x 5 targets
    with pytest.raises(ValueError, match=r"references_per_target=6 needs .* at least 6 utterances .*at most 5"):
        build_protocol(utterances, trials=1, seed=0, references_per_target=6)
    with pytest.raises(ValueError, match=r"found 1 speaker\(s\) \(ann\).* at least 2"):
        build_protocol([u for u in utterances if u.speaker == "ann"], trials=1, seed=0)
    with pytest.raises(ValueError, match="trials must be at least 1"):
        build_protocol(utterances, trials=0, seed=0)


def test_json_and_csv_round_trip_equal(utterances, tmp_path):
    protocol = build_protocol(utterances, trials=15, seed=4, references_per_target=2)
    from_json = Protocol.load(protocol.save(tmp_path / "p.json"))
    from_csv = Protocol.load(protocol.save(tmp_path / "p.csv"))
    assert from_json == protocol == from_csv
    assert from_json.metadata["seed"] == 4 and from_json.metadata["created_by"].startswith("voicelab ")
    lines = (tmp_path / "p.csv").read_text().splitlines()
    assert len(lines) == 2 + 15 and lines[1].startswith("trial_id,source_path")
    assert lines[2].split(",")[4].count("|") == 1  # two references joined with '|'


def test_relative_paths_travel_with_the_corpus(tmp_path):
    home = make_corpus(tmp_path / "a" / "synth")
    protocol = build_protocol(read_corpus(home), trials=8, seed=0)
    protocol.save(home / "protocols" / "p.json")
    protocol.save(home / "protocols" / "p.csv")
    assert str(tmp_path) not in (home / "protocols" / "p.json").read_text()  # nothing absolute
    shutil.move(str(tmp_path / "a"), str(tmp_path / "b"))
    moved = tmp_path / "b" / "synth"
    for name in ("p.json", "p.csv"):
        loaded = Protocol.load(moved / "protocols" / name)
        assert [t.source_path for t in loaded] == [moved / t.source_path.relative_to(home) for t in protocol]
        assert all(p.is_file() for t in loaded for p in t.audio_paths.values())
        assert loaded.metadata["corpora"] == [str(moved / "wavs")]  # the corpus's common folder


def test_malformed_files_and_missing_audio_give_clear_errors(utterances, tmp_path):
    protocol = build_protocol(utterances, trials=4, seed=0)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=r"bad\.json: not valid JSON"):
        Protocol.load(bad)
    bad.write_text('{"trials": [{"trial_id": "t1", "source_path": "x.wav"}]}')
    with pytest.raises(ValueError, match=r"bad\.json: trial 1: missing source_speaker, target_speaker, reference_paths"):
        Protocol.load(bad)
    path = protocol.save(tmp_path / "p.csv")
    lines = path.read_text().splitlines()
    no_target = [",".join(c for i, c in enumerate(line.split(",")) if i != 3) for line in lines[1:]]
    path.write_text("\n".join(no_target) + "\n")
    with pytest.raises(ValueError, match=r"p\.csv: missing column\(s\) target_speaker"):
        Protocol.load(path)
    (tmp_path / "p.txt").write_text("x")
    with pytest.raises(ValueError, match=r"\.txt'; protocols are \.json or \.csv"):
        Protocol.load(tmp_path / "p.txt")

    # A corpus file that disappeared after the protocol was written.
    copy = make_corpus(tmp_path / "copy")
    saved = build_protocol(read_corpus(copy), trials=3, seed=0).save(copy / "p.json")
    gone = Protocol.load(saved).trials[0].reference_paths[0]
    gone.unlink()
    with pytest.raises(ValueError, match=rf"p\.json: trial t1: reference 1 audio file {re.escape(str(gone))} does not exist"):
        Protocol.load(saved)
    assert len(Protocol.load(saved, check_files=False)) == 3


def test_trial_normalises_types():
    trial = Trial("t1", "a.wav", "s1", "s2", ["b.wav"], None, "", "", "", "", "", "")
    assert trial.reference_paths == (Path("b.wav"),) and trial.parallel_path is None
    assert trial.source_text == "" and trial.sentence_id is None and trial.target_gender is None
    assert trial.parallel_text == ""
    assert Trial("t1", "a.wav", "s1", "s2", ["b.wav"], parallel_text=None).parallel_text == ""


def test_parallel_text_saved_and_old_files_without_it_still_load(utterances, tmp_path):
    protocol = build_protocol(utterances, trials=6, seed=0)
    assert all(t.parallel_text == t.source_text for t in protocol)  # the manifest's shared sentences
    for name in ("p.json", "p.csv"):
        assert Protocol.load(protocol.save(tmp_path / name)) == protocol
    # Files written before parallel_text existed: no such key / column.
    doc = json.loads((tmp_path / "p.json").read_text())
    for row in doc["trials"]:
        del row["parallel_text"]
    (tmp_path / "old.json").write_text(json.dumps(doc))
    lines = (tmp_path / "p.csv").read_text().splitlines()
    (tmp_path / "old.csv").write_text("\n".join([lines[0]] + [line.rsplit(",", 1)[0] for line in lines[1:]]) + "\n")
    assert lines[1].endswith(",parallel_text")
    for name in ("old.json", "old.csv"):
        old = Protocol.load(tmp_path / name)
        assert [t.parallel_text for t in old] == [""] * 6
        assert [replace(t, parallel_text="") for t in protocol] == old.trials


def test_real_speech_protocol_uses_held_out_speakers_with_vctk_text(real_speech):
    protocol = build_real_speech_protocol(real_speech, trials=42, seed=0)  # one full sweep of 7 x 6 pairs
    utterances = read_corpus(real_speech / "librispeech" / "test-other") + read_corpus(real_speech / "vctk")
    check_trials(_unprefixed(protocol), utterances, k=2)
    speakers = {t.source_speaker for t in protocol} | {t.target_speaker for t in protocol}
    assert speakers == {f"librispeech:{s}" for s in LIBRI_GENDERS} | {"vctk:p225", "vctk:p226"}
    assert not any("train-clean-100" in str(p) for t in protocol for p in t.audio_paths.values())
    texts = dict(line.split("\t", 1) for line in (real_speech / "vctk" / "transcripts.tsv").read_text().splitlines()[1:])
    vctk = [t for t in protocol if t.source_corpus == "vctk"]
    assert vctk and all(t.source_text == texts[t.source_path.stem.split("_")[1]].strip() for t in vctk)
    within = [t for t in vctk if t.target_corpus == "vctk"]  # p225 <-> p226 read the same passages
    assert len(within) == 2 and all(t.parallel_path.stem.split("_")[1] == t.source_path.stem.split("_")[1]
                                    and t.parallel_path.parent.name == t.target_speaker.split(":")[1] for t in within)
    assert protocol.metadata["builder"] == "build_real_speech_protocol"


def test_cross_gender_on_librispeech_genders(real_speech):
    protocol = build_real_speech_protocol(real_speech, trials=12, seed=1, corpora=["librispeech"], cross_gender=True)
    assert len({(t.source_speaker, t.target_speaker) for t in protocol}) == 12  # 2 F x 3 M, both ways
    for trial in protocol:
        source, target = (LIBRI_GENDERS[s.split(":")[1]] for s in (trial.source_speaker, trial.target_speaker))
        assert source != target and (trial.source_gender, trial.target_gender) == (source, target)
    # The real-speech VCTK copy ships no speaker-info.txt, so its genders are unknown.
    with pytest.raises(ValueError, match=r"cross_gender needs speaker genders.* corpus vctk"):
        build_real_speech_protocol(real_speech, trials=4, seed=1, cross_gender=True)


def test_cli_writes_a_protocol_and_refuses_a_bad_corpus(corpus, tmp_path, capsys):
    out = tmp_path / "cli.csv"
    assert eval_cli(["protocol", "--corpus", str(corpus), "--out", str(out), "--trials", "6", "--seed", "3",
                     "--unseen-only", "--cross-gender", "--references", "1"]) == 0
    assert "wrote" in capsys.readouterr().out
    loaded = Protocol.load(out)
    assert len(loaded) == 6 and loaded.metadata["options"]["references_per_target"] == 1
    assert all({t.source_speaker, t.target_speaker} <= set(TEST_SPLIT) and t.source_gender != t.target_gender
               for t in loaded)
    result = subprocess.run([sys.executable, "-m", "eval", "protocol", "--corpus", str(tmp_path / "nowhere"),
                             "--out", str(tmp_path / "p.json"), "--trials", "3", "--seed", "0"],
                            cwd=REPO, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and "nowhere does not exist" in result.stderr
    assert not (tmp_path / "p.json").exists()


def test_cli_real_speech_protocol(real_speech, tmp_path, capsys):
    out = tmp_path / "real.json"
    assert eval_cli(["real-speech-protocol", "--root", str(real_speech), "--out", str(out), "--trials", "10",
                     "--seed", "0"]) == 0
    assert len(Protocol.load(out)) == 10
    assert eval_cli(["real-speech-protocol", "--root", str(real_speech), "--out", str(out), "--trials", "500",
                     "--seed", "0"]) == 2
    assert "error: asked for 500 trials but only 420" in capsys.readouterr().err


def test_real_speech_protocol_adds_ljspeech_only_when_asked(real_speech, tmp_path):
    if not (real_speech / "ljspeech" / "metadata.csv").is_file():
        pytest.skip(f"no ljspeech/ in {real_speech}")
    protocol = build_real_speech_protocol(real_speech, trials=6, seed=0, corpora=["vctk", "ljspeech"],
                                          cross_gender=True, genders={"vctk:p225": "F", "vctk:p226": "M"})
    speakers = {t.source_speaker for t in protocol} | {t.target_speaker for t in protocol}
    assert speakers == {"vctk:p225", "vctk:p226", "ljspeech:LJ"}
    lj = [t for t in protocol if t.source_speaker == "ljspeech:LJ"]
    assert lj and all(t.source_text and t.source_gender == "F" and t.target_speaker == "vctk:p226"
                      and t.source_corpus == "ljspeech" for t in lj)
    assert all(t.target_gender == "F" for t in protocol if t.target_speaker == "ljspeech:LJ")
    assert protocol.metadata["held_out"] == ["vctk"] and protocol.metadata["not_held_out"] == ["ljspeech"]
    out = tmp_path / "lj.json"
    assert eval_cli(["real-speech-protocol", "--root", str(real_speech), "--out", str(out), "--trials", "4",
                     "--seed", "0", "--corpora", "ljspeech", "vctk"]) == 0
    assert "ljspeech:LJ" in {t.target_speaker for t in Protocol.load(out)}
    with pytest.raises(ValueError, match=r"unknown corpora \['timit'\]; a real-speech folder offers librispeech, vctk,"
                                         r" ljspeech"):
        build_real_speech_protocol(real_speech, trials=2, seed=0, corpora=["timit"])


# ------------------------------------------------------------------------------ folder protocols


def _clip(path: Path, seconds: float = 0.2, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sf.write(path, (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32), 16000)
    return path


@pytest.fixture
def folders(tmp_path) -> tuple[Path, Path, Path]:
    """sources/ with two plain clips, references/ with a one-clip voice, a voice folder of two
    clips and a folder without audio, and a texts file (with a header) for both sources."""
    sources, references = tmp_path / "sources", tmp_path / "references"
    _clip(sources / "a.wav", seed=1)
    _clip(sources / "b.flac", seed=2)
    _clip(references / "alice.wav", seed=3)
    _clip(references / "bob" / "one.wav", seed=4)
    _clip(references / "bob" / "two.wav", seed=5)
    (references / "notes").mkdir()
    (references / "notes" / "readme.txt").write_text("not a voice")
    texts = tmp_path / "texts.tsv"
    texts.write_text("name\ttext\na\tHello there.\nb.flac\tA second  sentence.\n")
    return sources, references, texts


def test_folder_protocol_crosses_every_source_with_every_voice(folders):
    sources, references, texts = folders
    protocol = build_folder_protocol(sources, references, texts=texts)
    assert [(t.trial_id, t.source_path.name, t.target_speaker) for t in protocol] == [
        ("t1", "a.wav", "ref:alice"), ("t2", "a.wav", "ref:bob"),
        ("t3", "b.flac", "ref:alice"), ("t4", "b.flac", "ref:bob")]
    by_voice = {t.target_speaker: [p.name for p in t.reference_paths] for t in protocol}
    assert by_voice == {"ref:alice": ["alice.wav"], "ref:bob": ["one.wav", "two.wav"]}
    assert {t.source_speaker: t.source_text for t in protocol} == {"source:a": "Hello there.",
                                                                   "source:b": "A second sentence."}
    assert all(t.parallel_path is None and t.parallel_text == "" and t.source_path.is_absolute() for t in protocol)
    meta = protocol.metadata
    assert meta["builder"] == "build_folder_protocol" and meta["parallel_trials"] == 0 and meta["speakers"] == 4
    assert meta["wer_reference"] == "transcript" and meta["corpora"] == [str(sources), str(references)]
    capped = build_folder_protocol(sources, references, max_references=1)
    assert {t.target_speaker: len(t.reference_paths) for t in capped} == {"ref:alice": 1, "ref:bob": 1}


def test_folder_protocol_wer_reference_follows_the_texts(folders, tmp_path):
    sources, references, _ = folders
    assert build_folder_protocol(sources, references).metadata["wer_reference"] == "asr-of-source"
    one = tmp_path / "one.csv"
    one.write_text('file_name,text\na.wav,"Hello, there"\n')
    protocol = build_folder_protocol(sources, references, texts=one)
    assert protocol.metadata["wer_reference"] == "mixed"
    assert {t.source_speaker: t.source_text for t in protocol} == {"source:a": "Hello, there", "source:b": ""}


def test_folder_protocol_samples_trials_deterministically(folders):
    sources, references, _ = folders
    for i in range(3):
        _clip(sources / f"more{i}.wav", seed=10 + i)
    everything = build_folder_protocol(sources, references)
    pairs = [(t.source_path, t.target_speaker) for t in everything]
    assert len(everything) == 10 == len(set(pairs))  # 5 sources x 2 voices
    drawn = build_folder_protocol(sources, references, trials=4, seed=1)
    assert drawn == build_folder_protocol(sources, references, trials=4, seed=1)
    chosen = [(t.source_path, t.target_speaker) for t in drawn]
    assert len(set(chosen)) == 4 and set(chosen) <= set(pairs)
    assert chosen == sorted(chosen, key=pairs.index)  # kept in the cross product's order
    assert [t.trial_id for t in drawn] == ["t1", "t2", "t3", "t4"]
    assert drawn.metadata["options"]["trials"] == 4 and drawn.metadata["seed"] == 1
    draws = {tuple((t.source_path, t.target_speaker) for t in build_folder_protocol(sources, references, trials=4,
                                                                                     seed=s)) for s in range(6)}
    assert len(draws) > 1  # the seed matters
    assert len(build_folder_protocol(sources, references, trials=10)) == 10


def test_folder_protocol_never_pairs_a_speaker_with_itself(tmp_path):
    clips = tmp_path / "clips"
    for name in ("x", "y", "z"):
        _clip(clips / f"{name}.wav")
    same = build_folder_protocol(clips, clips)  # Seed-VC style: every clip with every other clip's voice
    assert len(same) == 6 and all(t.source_speaker[len("source:"):] != t.target_speaker[len("ref:"):] for t in same)
    assert all(t.source_path not in t.reference_paths for t in same)
    assert same.metadata["same_speaker_pairs_skipped"] == 3
    with pytest.raises(ProtocolError, match=r"asked for 7 trials but 3 source\(s\) x 3 reference voice\(s\) give only 6"
                                            r" pairs \(3 same-speaker pairs left out\)"):
        build_folder_protocol(clips, clips, trials=7)


def test_folder_protocol_keeps_a_corpus_speakers_and_texts(tmp_path, folders):
    _, references, _ = folders
    lj = tmp_path / "LJSpeech"
    for n in (1, 2, 3):
        _clip(lj / "wavs" / f"LJ001-000{n}.wav", seed=n)
    (lj / "metadata.csv").write_text("LJ001-0001|Mr. Smith|Mister Smith\nLJ001-0002|in 1476|in fourteen seventy-six\n"
                                     "LJ001-0003|Third|\n")
    protocol = build_folder_protocol(lj, references)
    assert len(protocol) == 6 and {t.source_speaker for t in protocol} == {"LJ"}
    assert {t.source_path.stem: t.source_text for t in protocol} == {
        "LJ001-0001": "Mister Smith", "LJ001-0002": "in fourteen seventy-six", "LJ001-0003": "Third"}
    assert {t.source_gender for t in protocol} == {"F"} and {t.source_corpus for t in protocol} == {"ljspeech"}
    assert protocol.metadata["wer_reference"] == "transcript"
    # A voice named like the corpus speaker is that speaker: never paired with it.
    _clip(references / "LJ.wav")
    assert {t.target_speaker for t in build_folder_protocol(lj, references)} == {"ref:alice", "ref:bob"}
    # A texts file takes precedence; its pipe-separated third column is the normalised text.
    texts = tmp_path / "metadata.csv"
    texts.write_text("LJ001-0001|Dr. Who|Doctor Who\nLJ001-0002|two columns only\nLJ001-0003||\n")
    assert read_texts(texts) == {"LJ001-0001": "Doctor Who", "LJ001-0002": "two columns only", "LJ001-0003": ""}
    texts_first = {t.source_path.stem: t.source_text for t in build_folder_protocol(lj, references, texts=texts)}
    assert texts_first == {"LJ001-0001": "Doctor Who", "LJ001-0002": "two columns only",
                           "LJ001-0003": "Third"}  # an empty text leaves the corpus's own


@pytest.mark.parametrize("suffix", [".json", ".csv"])
def test_folder_protocol_round_trip_and_cli(folders, tmp_path, capsys, suffix):
    sources, references, texts = folders
    protocol = build_folder_protocol(sources, references, texts=texts, trials=3, seed=2)
    saved = Protocol.load(protocol.save(tmp_path / "out" / f"p{suffix}"))
    assert saved == protocol
    assert saved.metadata["texts"] == str(texts) and saved.metadata["wer_reference"] == "transcript"
    assert str(tmp_path) not in (tmp_path / "out" / f"p{suffix}").read_text()  # stored relative
    out = tmp_path / f"cli{suffix}"
    assert eval_cli(["folder-protocol", "--sources", str(sources), "--references", str(references), "--texts",
                     str(texts), "--trials", "3", "--seed", "2", "--out", str(out)]) == 0
    assert "3 trials" in capsys.readouterr().out and Protocol.load(out) == protocol
    assert eval_cli(["folder-protocol", "--sources", str(sources), "--references", str(references),
                     "--trials", "9", "--out", str(tmp_path / "no.json")]) == 2
    assert "error: asked for 9 trials but 2 source(s) x 2 reference voice(s) give only 4" in capsys.readouterr().err
    assert not (tmp_path / "no.json").exists()


def test_folder_protocol_clear_errors(folders, tmp_path):
    sources, references, texts = folders
    with pytest.raises(ProtocolError, match=r"sources folder .*nowhere does not exist"):
        build_folder_protocol(tmp_path / "nowhere", references)
    with pytest.raises(ProtocolError, match=r"references folder .*nowhere does not exist"):
        build_folder_protocol(sources, tmp_path / "nowhere")
    (tmp_path / "silent").mkdir()
    (tmp_path / "silent" / "notes.txt").write_text("no audio")
    with pytest.raises(ProtocolError, match=r"no audio files .* in the sources folder .*silent"):
        build_folder_protocol(tmp_path / "silent", references)
    with pytest.raises(ProtocolError, match=r"no reference voice in .*silent: put each voice there as one audio file"):
        build_folder_protocol(sources, tmp_path / "silent")
    bad = tmp_path / "bad.tsv"
    bad.write_text("a\tfine\n\nb.flac no tab here\n")
    with pytest.raises(ProtocolError, match=r"bad\.tsv line 3: expected name<TAB>text"):
        build_folder_protocol(sources, references, texts=bad)
    bad.write_text("just words\n")
    with pytest.raises(ProtocolError, match=r"bad\.tsv line 1: no separator"):
        read_texts(bad)
    bad.write_text("a|x|y|z\n")
    with pytest.raises(ProtocolError, match=r"line 1: 4 columns"):
        read_texts(bad)
    bad.write_text("a\tone\na\ttwo\n")
    with pytest.raises(ProtocolError, match=r"line 2: 'a' was already given on line 1"):
        read_texts(bad)
    bad.write_text("zzz\tnobody\n")
    with pytest.raises(ProtocolError, match=r"none of the 1 names in .*bad\.tsv is a source"):
        build_folder_protocol(sources, references, texts=bad)
    with pytest.raises(ProtocolError, match=r"texts file .*missing\.tsv does not exist"):
        build_folder_protocol(sources, references, texts=tmp_path / "missing.tsv")
    with pytest.raises(ProtocolError, match="trials must be at least 1"):
        build_folder_protocol(sources, references, trials=0)
    _clip(references / "bob.flac")
    with pytest.raises(ProtocolError, match=r"would both be ref:bob \(bob/ and bob\.flac\)"):
        build_folder_protocol(sources, references)


def _unprefixed(protocol: Protocol) -> Protocol:
    """Speaker ids as the single-corpus readers give them ("367", not "librispeech:367")."""
    strip = lambda s: s.split(":", 1)[1]
    return Protocol([replace(t, source_speaker=strip(t.source_speaker), target_speaker=strip(t.target_speaker))
                     for t in protocol], protocol.metadata)

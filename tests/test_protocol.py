"""Evaluation protocols built for real: on a small hand-made parallel corpus with a test split
and genders, and on the held-out LibriSpeech and VCTK speakers of ../shared/real-speech."""
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
from eval.protocol import Protocol, Trial, build_protocol, build_real_speech_protocol
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
            assert parallel.speaker == trial.target_speaker
            if "sentence_id" in source.extra:
                assert parallel.extra["sentence_id"] == source.extra["sentence_id"] == trial.sentence_id
            else:
                assert parallel.text == source.text
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


def _unprefixed(protocol: Protocol) -> Protocol:
    """Speaker ids as the single-corpus readers give them ("367", not "librispeech:367")."""
    strip = lambda s: s.split(":", 1)[1]
    return Protocol([replace(t, source_speaker=strip(t.source_speaker), target_speaker=strip(t.target_speaker))
                     for t in protocol], protocol.metadata)

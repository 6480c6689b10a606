"""The evaluation run for real: a tiny synthetic corpus (espeak-ng, with phone alignments), an
untrained VQVC+, the baselines, a trial whose source is silent, interruption and resume, the
report files and the model card."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from eval.__main__ import main as eval_cli
from eval.asr import default_asr
from eval.protocol import Protocol, Trial, build_protocol
from eval.runner import ResultStore, run_trials
from eval.scoring import Scorer, expand_metrics
from eval.systems import SourceBaseline, build_systems
from vc.audio import load_audio
from vc.data import build_corpus, read_corpus
from vc.models.vqvc import VQVC

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(protocol path with 3 real trials + 1 silent-source trial, model folder)."""
    root = tmp_path_factory.mktemp("eval-run")
    build_corpus(root / "corpus", voices=4, sentences=5, seed=0, test_fraction=0.5, parallel_fraction=0.4,
                 engine_names=["espeak"], jobs=2, progress=False)
    utterances = read_corpus(root / "corpus")
    protocol = build_protocol(utterances, trials=3, seed=0, corpus_paths=[str(root / "corpus")])
    silent = root / "silent.wav"
    sf.write(silent, np.zeros(16000, dtype=np.float32), 16000)
    first = protocol.trials[0]
    protocol.trials.append(Trial("t-silent", silent, "nobody", first.target_speaker, first.reference_paths,
                                 source_text="nothing at all"))
    path = protocol.save(root / "protocol.json")
    torch.manual_seed(0)
    VQVC(code_channels=[16, 8], codebook_sizes=[16, 32], strides=[2, 2], hidden=48).save_pretrained(root / "vqvc")
    return path, root / "vqvc"


def test_run_report_and_card_end_to_end(setup, tmp_path, capsys):
    protocol_path, model = setup
    out = tmp_path / "eval"
    assert eval_cli(["run", "--models", str(model), "--protocol", str(protocol_path), "--out", str(out),
                     "--examples", "1", "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    systems = {s["name"]: s for s in report["systems"]}
    assert list(systems) == ["source", "target ceiling", "resynthesis (griffinlim)", str(model)]
    for system in systems.values():  # the silent source fails every system; the rest run
        assert (system["trials"], system["failed"]) == (4, 1), system["name"]
    failures = [f for f in report["failures"] if f["trial_id"] == "t-silent"]
    assert failures and all("silent" in f["error"] for f in failures)

    source, ceiling, model_row = systems["source"]["metrics"], systems["target ceiling"]["metrics"], \
        systems[str(model)]["metrics"]
    assert source["secs_to_source"]["value"] == pytest.approx(1.0)  # the source is what models receive
    assert source["f0_corr"]["value"] == pytest.approx(1.0) and source["f0_rmse"]["value"] == pytest.approx(0.0)
    assert ceiling["secs"]["value"] > source["secs"]["value"] + 0.1  # the target sounds like the target
    assert "mcd" not in ceiling and "f0_corr" not in ceiling  # the ceiling is the parallel utterance
    assert 0.0 <= report["sv_threshold"]["eer"] < 0.5
    for name in ("secs", "mcd", "rtf", "wer", "cer"):
        figure = model_row[name]
        assert figure["n"] == 3 and figure["ci95"][0] <= figure["value"] <= figure["ci95"][1], name
    assert model_row["rtf"]["value"] > 0 and "rtf" not in source
    for name in ("abx_within", "abx_across"):  # content figures on the corpus's phone alignments
        assert 0.0 <= source[name]["value"] <= 1.0 and 0.0 <= model_row[name]["value"] <= 1.0
    assert model_row["bitrate"]["value"] > 0 and "bitrate" not in source
    assert report["asr"] == default_asr()[0]  # whisper-base where its weights are (CI fetches them)
    for system in systems.values():  # naturalness of every output, baselines included
        assert 1.0 <= system["metrics"]["dnsmos_ovrl"]["value"] <= 5.0, system["name"]
        assert system["metrics"]["dnsmos_ovrl"]["n"] == 3
    assert all(r["score_seconds"] > 0 for r in report["trials"] if r["status"] == "ok")

    ok_rows = [r for r in report["trials"] if r["status"] == "ok" and r["system"] == str(model)]
    clip = load_audio(out / ok_rows[0]["audio"])
    assert clip.sample_rate == 16000 and clip.duration > 0.5
    html = (out / "report.html").read_text()
    assert "data:audio/wav;base64," in html and "data:image/png;base64," in html
    assert (out / "report.md").read_text().count("\n|") >= 5
    assert "report.html" in capsys.readouterr().out

    published = tmp_path / "published" / "synthetic"
    assert eval_cli(["publish", "--report", str(out), "--out", str(published)]) == 0
    summary = json.loads((published / "report.json").read_text())
    assert "trials" not in summary and summary["systems"] == report["systems"]
    assert (published / summary["protocol"]["path"]).resolve() == protocol_path.resolve()
    assert (published / "report.md").read_text().startswith("# ")

    assert eval_cli(["card", "--report", str(out), "--model", str(model)]) == 0
    card = (model / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    results = front["model-index"][0]["results"][0]
    assert {m["type"] for m in results["metrics"]} >= {"secs", "wer", "mcd", "abx_within"}
    assert eval_cli(["card", "--report", str(out), "--model", "no-such-model"]) == 2
    assert "no model 'no-such-model'" in capsys.readouterr().err


def test_interrupted_run_resumes_without_redoing_trials(setup, tmp_path):
    protocol_path, model = setup
    protocol = Protocol.load(protocol_path)
    systems = build_systems([str(model)], baselines=False)
    scorer = Scorer(expand_metrics(["similarity", "speed"]))
    out = tmp_path / "eval"

    made = []

    def stop_after_two(row):
        made.append(row)
        if len(made) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_trials(protocol, systems, scorer, out, show_progress=False, on_row=stop_after_two)
    first = {r["trial_id"]: r for r in ResultStore(out).load().values()}
    assert len(first) == 2
    stamps = {p: p.stat().st_mtime_ns for p in (out / "audio").rglob("*.wav")}

    counts = run_trials(protocol, systems, scorer, out, show_progress=False)
    assert (counts.reused, counts.converted, counts.failed) == (2, 1, 1)  # the silent one fails again
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())  # finished outputs untouched
    rows = ResultStore(out).load()
    assert {k[1] for k in rows} == {t.trial_id for t in protocol}
    assert rows[str(model), "t-silent"]["status"] == "failed"

    # outputs are found by content: the same model under another name is not converted again
    renamed = build_systems([f"{model}+griffinlim"], baselines=False)
    counts = run_trials(protocol, renamed, scorer, out, show_progress=False)
    assert (counts.reused, counts.converted, counts.failed) == (3, 0, 1)
    assert ResultStore(out).load()[f"{model}+griffinlim", trial_id_of(first)]["status"] == "ok"

    # asking for another metric rescores the saved outputs; nothing is converted again
    richer = Scorer(expand_metrics(["similarity", "speed", "mcd"]))
    counts = run_trials(protocol, systems, richer, out, show_progress=False)
    assert (counts.converted, counts.rescored, counts.failed) == (0, 3, 1)
    trial_id = next(iter(first))
    rescored = ResultStore(out).load()[str(model), trial_id]
    assert "mcd" in rescored["metrics"]
    assert rescored["metrics"]["rtf"] == first[trial_id]["metrics"]["rtf"]  # speed kept from the conversion

    # rescoring one metric group keeps the others' values
    counts = run_trials(protocol, systems, Scorer(expand_metrics(["f0"])), out, show_progress=False)
    assert (counts.converted, counts.rescored) == (0, 3)
    kept = ResultStore(out).load()[str(model), trial_id]
    assert {"secs", "mcd", "rtf"} <= set(kept["metrics"]) and set(kept["scored"]) >= {"secs", "mcd", "f0_corr"}


def trial_id_of(rows: dict) -> str:
    return next(iter(rows))


def test_the_latest_row_wins_across_ranks(tmp_path):
    """A row rescored on rank 0 after a sharded run wrote it on rank 3 is the one read back;
    rows from before times were recorded are older than timed ones; a failure never replaces an
    ok row of the same key."""
    def row(score, status="ok", key="k"):
        return {"system": "m", "trial_id": "t1", "key": key, "status": status, "metrics": {"secs": score}}

    results = tmp_path / "results"
    results.mkdir()
    (results / "rows.rank3.jsonl").write_text(json.dumps(row(0.1)) + "\n")  # untimed, older
    ResultStore(tmp_path, rank=0).append(row(0.2))
    assert ResultStore(tmp_path).load()["m", "t1"]["metrics"]["secs"] == 0.2
    ResultStore(tmp_path, rank=3).append(row(0.3))
    assert ResultStore(tmp_path).load()["m", "t1"]["metrics"]["secs"] == 0.3
    ResultStore(tmp_path, rank=0).append(row(None, status="failed"))
    assert ResultStore(tmp_path).load()["m", "t1"]["metrics"]["secs"] == 0.3
    ResultStore(tmp_path, rank=0).append(row(None, status="failed", key="new model"))
    assert ResultStore(tmp_path).load()["m", "t1"]["status"] == "failed"


def test_identical_signals_score_perfectly(setup, tmp_path):
    """A trial whose reference and parallel utterance are the source itself: the source
    baseline then matches the target exactly on every signal metric."""
    protocol = Protocol.load(setup[0])
    source = protocol.trials[0].source_path
    trial = Trial("same", source, "a", "b", (source,), source_text="", parallel_path=source)
    system = SourceBaseline()
    scorer = Scorer(expand_metrics(["similarity", "mcd", "f0"]))
    values, transcript = scorer.score(system, trial, system.run(trial))
    assert values["secs_to_source"] == pytest.approx(1.0)
    # references are embedded as recorded; trimming the output moves GE2E's windows a little
    assert values["secs"] > 0.95
    assert values["mcd"] == pytest.approx(0.0, abs=1e-6)
    assert values["f0_corr"] == pytest.approx(1.0) and values["f0_rmse"] == pytest.approx(0.0, abs=1e-9)
    assert transcript is None  # no ASR asked for, and no text


def test_bad_run_arguments_give_clear_errors(setup, tmp_path, capsys):
    protocol_path, model = setup
    assert eval_cli(["run", "--models", "no-such-model", "--protocol", str(protocol_path),
                     "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert "no-such-model" in capsys.readouterr().err
    assert eval_cli(["run", "--protocol", str(tmp_path / "missing.json"), "--out", str(tmp_path / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert eval_cli(["run", "--no-baselines", "--protocol", str(protocol_path), "--out", str(tmp_path / "x")]) == 2
    assert "nothing to evaluate" in capsys.readouterr().err
    assert eval_cli(["run", "--models", str(model), "--protocol", str(protocol_path), "--out", str(tmp_path / "x"),
                     "--shard", "3/2"]) == 2
    assert "--shard" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "x" / "report.json")


def test_folder_protocol_runs_end_to_end(real_speech, tmp_path):
    """Seed-VC's shape on a tiny folder: sources (one with a transcript, one without) x reference
    voices (a single clip, a folder of two), scored with ASR and DNSMOS; the untranscribed source
    is scored against the ASR transcript of the unconverted source, and the report says so."""
    vctk, libri = real_speech / "vctk", real_speech / "librispeech" / "test-other"
    sources, references = tmp_path / "sources", tmp_path / "references"
    sources.mkdir()
    (references / "voice-b").mkdir(parents=True)
    load_audio(vctk / "p225" / "p225_003.wav").save(sources / "with-text.wav")
    load_audio(vctk / "p226" / "p226_005.wav").save(sources / "no-text.wav")
    speakers = sorted(d for d in libri.iterdir() if d.is_dir())
    load_audio(sorted(speakers[0].glob("*.flac"))[0]).save(references / "voice-a.wav")
    for clip in sorted(speakers[1].glob("*.flac"))[:2]:
        load_audio(clip).save(references / "voice-b" / f"{clip.stem}.wav")
    texts = tmp_path / "texts.tsv"
    texts.write_text("with-text\tSix spoons of fresh snow peas, five thick slabs of blue cheese, and maybe a "
                     "snack for her brother Bob.\n")
    protocol_path = tmp_path / "folder.json"
    assert eval_cli(["folder-protocol", "--sources", str(sources), "--references", str(references),
                     "--texts", str(texts), "--out", str(protocol_path)]) == 0
    protocol = Protocol.load(protocol_path)
    assert len(protocol) == 4 and protocol.metadata["wer_reference"] == "mixed"

    out = tmp_path / "eval"
    assert eval_cli(["run", "--protocol", str(protocol_path), "--out", str(out), "--quiet",
                     "--metrics", "similarity", "intelligibility", "naturalness"]) == 0
    report = json.loads((out / "report.json").read_text())
    systems = {s["name"]: s for s in report["systems"]}
    source = systems["source"]["metrics"]
    assert source["wer"]["n"] == 4  # two against the transcript, two against ASR of the source
    assert source["wer"]["value"] < 0.1
    assert "wer" not in systems["target ceiling"]["metrics"]  # it reads other sentences
    assert any("transcript of the unconverted source" in note for note in report["notes"])
    resynthesis = systems["resynthesis (griffinlim)"]["metrics"]
    assert resynthesis["dnsmos_ovrl"]["value"] < source["dnsmos_ovrl"]["value"]  # Griffin-Lim costs quality
    assert resynthesis["wer"]["n"] == 4

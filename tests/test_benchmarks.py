"""`python -m benchmarks --tiny`: every section runs and writes results.md and results.json with
the expected sections and keys. How fast anything is, is not checked."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO

MACHINE_KEYS = {"date", "platform", "cpu", "cores", "threads", "python", "torch", "voicelab",
                "load_average_start", "load_average_end", "other_load", "device"}


def benchmark(*args: str, timeout: float = 600):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "benchmarks", "--threads", "1", "--quiet", *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=timeout)


def results_of(out, done) -> tuple[dict, str]:
    assert (out / "results.json").is_file(), f"nothing written (exit {done.returncode}): {done.stderr[-3000:]}"
    return json.loads((out / "results.json").read_text()), (out / "results.md").read_text()


def check_ok(done, results: dict) -> None:
    assert done.returncode == 0, done.stderr[-3000:] + "\n" + json.dumps(results.get("sections"), indent=1)[-3000:]
    assert "Traceback" not in done.stderr


@pytest.fixture(scope="module")
def tiny_run(real_speech, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    done = benchmark("--tiny", "--skip", "web,eval", "--out", str(out))
    results, markdown = results_of(out, done)
    check_ok(done, results)
    return results, markdown


def test_tiny_run_writes_every_section(tiny_run):
    results, markdown = tiny_run
    assert results["format"] == "voicelab-benchmarks"
    assert MACHINE_KEYS <= set(results["machine"])
    assert results["machine"]["threads"] == 1
    assert results["reference"]["name"] == "griffinlim-32" and results["reference"]["speed"] > 0
    assert set(results["sections"]) == {"chains", "vocoders", "speaker", "cloner", "growth"}
    assert set(results["reference"]["by_section"]) == set(results["sections"])  # measured again before each
    assert set(results["skipped"]) == {"web", "eval", "training"}
    for title in ("## Machine", "## Converter + vocoder chains", "## Vocoders alone", "## Speaker encoder",
                  "## Text-to-speech cloner", "## How cost grows", "## Not run", "load average at start"):
        assert title in markdown


def test_chains_cover_every_shipped_pair_with_stages_and_memory(tiny_run):
    results, _ = tiny_run
    registry = json.loads((REPO / "models.json").read_text())
    chains = results["sections"]["chains"]["chains"]
    assert {(c["model"], c["vocoder"]) for c in chains} == \
        {(m["name"], v["name"]) for m in registry["converters"] for v in registry["vocoders"]}
    for chain in chains:
        assert "error" not in chain, chain
        assert [i["seconds"] for i in chain["inputs"]] == [2.0, 4.0]
        for item in chain["inputs"]:
            assert set(item["stage_shares"]) == {"decode", "speaker", "transcript", "conversion", "vocoder"}
            assert sum(item["stage_shares"].values()) == pytest.approx(1.0)
            assert item["speed"] > 0 and item["vs_reference"] > 0 and item["peak_rss_mb"] > 0


def test_vocoders_speaker_cloner_and_growth(tiny_run):
    results, markdown = tiny_run
    sections = results["sections"]
    speeds = {row["vocoder"]: row for row in sections["vocoders"]["speed"]}
    assert speeds["griffinlim-32"]["vs_reference"] == pytest.approx(1.0)
    assert {"hifigan-fast", "hifigan-v1 (untrained)"} <= set(speeds)
    for set_name in ("real-test-other", "real-vctk"):
        assert {"mel_l1", "mcd", "speaker_cos", "n"} <= set(sections["vocoders"]["quality"][set_name]["griffinlim-32"])
    assert sections["speaker"]["inputs"][0]["speed"] > 0
    cloner = sections["cloner"]  # checkpoints/synth-small is shipped and listed in models.json
    assert cloner["status"] == "measured", cloner
    assert cloner["cloners"] and all("error" not in row for row in cloner["cloners"]), cloner
    sizes = sections["growth"]["sizes"]
    assert [s["seconds"] for s in sizes] == [2.0, 4.0]
    assert all({"convert_seconds", "peak_rss_mb", "above_loaded_mb"} <= set(s) for s in sizes), sizes


@pytest.mark.slow
def test_tiny_web_and_eval(real_speech, tmp_path):
    done = benchmark("--tiny", "--only", "web,eval", "--out", str(tmp_path))
    results, markdown = results_of(tmp_path, done)
    check_ok(done, results)
    web = results["sections"]["web"]
    assert web["ok"] == 1 and web["failed"] == 0
    assert {"cold_start_seconds", "first_conversion_seconds", "median_seconds", "p95_seconds"} <= set(web)
    harness = results["sections"]["eval"]
    assert harness["trials"] == 1
    off = harness["settings"]["abx_off"]
    assert off["trials_per_minute"] > 0 and off["failed"] == 0
    assert {"secs", "wer", "dnsmos_ovrl"} <= set(off["metrics"])
    on = harness["settings"]["abx_on"]
    assert "skipped" in on or "abx_across" in on["metrics"]
    assert "## Web demo" in markdown and "## Evaluation harness" in markdown


@pytest.mark.slow
def test_tiny_training_speed_on_cpu(real_speech, tmp_path):
    done = benchmark("--tiny", "--only", "training", "--out", str(tmp_path))
    results, markdown = results_of(tmp_path, done)
    check_ok(done, results)
    families = {row["family"]: row for row in results["sections"]["training"]["families"]}
    assert set(families) == {"autovc", "vqvc", "vqvae", "ppgvc", "hifigan"}
    assert all(row["steps_per_second"] > 0 for row in families.values()), families
    assert "## Training speed" in markdown


@pytest.mark.parametrize("args, message", [
    (["--only", "chains,nonsense"], "unknown section(s) nonsense"),
    (["--only", "chains", "--skip", "web"], "give --only or --skip, not both"),
    (["--speech", "/nowhere/real-speech"], "is not a folder"),
    (["--registry", "/nowhere/models.json"], "does not exist"),
    (["--vocoder", "/nowhere/vocoder"], "/nowhere/vocoder"),
])
def test_bad_input_is_one_line_not_a_traceback(tmp_path, args, message):
    done = benchmark("--tiny", "--out", str(tmp_path / "out"), *args, timeout=120)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out" / "results.json").exists()


def test_out_must_be_a_folder_and_cuda_is_refused_cleanly_without_a_gpu(tmp_path):
    afile = tmp_path / "a-file"
    afile.write_text("x")
    done = benchmark("--tiny", "--out", str(afile), timeout=120)
    assert done.returncode == 2 and "is a file" in done.stderr and "Traceback" not in done.stderr
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    done = benchmark("--tiny", "--device", "cuda", "--out", str(tmp_path / "out"), timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "--device cuda" in done.stderr and "use --device cpu" in done.stderr

"""The training package, run through its CLI as a user runs it, on real speech."""
from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import REPO
from vc.audio import load_audio
from vc.hub import load_model
from vc.pipeline import VoiceConverter

FAMILIES = ["autovc", "vqvc", "vqvae", "ppgvc"]


@pytest.fixture(scope="module")
def feature_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("features")  # shared: features are computed once


def train(family, data, out, steps, cache, *extra, config=None):
    if config is None:
        config = out.parent / f"{family}-tiny.json"
        config.write_text(json.dumps({"model": {"preset": "small"},
                                      "train": {"batch_size": 2, "segment_frames": 64,
                                                "log_every": 1, "validate_every": 2,
                                                "sample_every": 100, "checkpoint_every": 2,
                                                "warmup_steps": 2}}))
    command = [sys.executable, "-m", "training", family, "--data", *map(str, data),
               "--config", str(config), "--steps", str(steps), "--out", str(out),
               "--cache", str(cache), "--quiet", *extra]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)


def losses(run_dir):
    with open(run_dir / "log.csv", newline="") as handle:
        return {int(r["step"]): float(r["loss"]) for r in csv.DictReader(handle)}


@pytest.mark.parametrize("family", FAMILIES)
def test_train_resume_and_load(family, real_speech, tmp_path, feature_cache):
    data = [real_speech / "vctk"]
    # Uninterrupted: 4 steps.
    whole = tmp_path / "whole"
    result = train(family, data, whole, 4, feature_cache)
    assert result.returncode == 0, result.stderr[-3000:]
    # Interrupted after 2 steps, then resumed to 4: the same losses, step for step.
    split = tmp_path / "split"
    assert train(family, data, split, 2, feature_cache).returncode == 0
    refused = train(family, data, split, 4, feature_cache)
    assert refused.returncode == 2 and "--resume" in refused.stderr
    resumed = train(family, data, split, 4, feature_cache, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert losses(split) == pytest.approx(losses(whole), rel=1e-5)
    assert sorted(losses(whole)) == [1, 2, 3, 4]

    # What the run leaves: resume state apart from publishable weights, plots, samples.
    for name in ("resume.pt", "log.csv", "loss.png", "run_config.json", "model/config.json",
                 "model/model.safetensors", "model/README.md", "samples/step0000004.wav",
                 "samples/step0000004.png"):
        assert (whole / name).exists(), name
    card = (whole / "model" / "README.md").read_text()
    assert "library_name: voicelab" in card and "steps" in card
    with open(whole / "log.csv", newline="") as handle:
        assert "val_recon" in next(csv.DictReader(handle)).keys()

    # The published weights load through the hub and the front object (run folder counts).
    model = load_model(whole / "model")
    assert model.model_type == family
    converter = VoiceConverter.from_pretrained(whole)
    for a, b in zip(converter.model.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)
    source = sorted((real_speech / "vctk" / "p225").glob("*.wav"))[0]
    reference = sorted((real_speech / "vctk" / "p226").glob("*.wav"))[:2]
    out = converter.convert(source, reference)
    assert out.sample_rate == model.mel.sample_rate
    assert abs(out.duration - load_audio(source).duration) < 1.0
    assert np.isfinite(out.samples).all() and np.abs(out.samples).max() > 0


def test_bad_arguments_are_messages(real_speech, tmp_path, feature_cache):
    result = train("autovc", [tmp_path / "nowhere"], tmp_path / "run", 1, feature_cache)
    assert result.returncode == 2 and "does not exist" in result.stderr
    result = train("autovc", [real_speech / "vctk"], tmp_path / "run", 1, feature_cache,
                   config=tmp_path / "missing.json")
    assert result.returncode == 2 and "no config file" in result.stderr


def test_import_autovc_cli(tmp_path):
    from test_autovc import official_state_dict
    official = official_state_dict(dim_neck=4, dim_pre=32, dim_conv=32, dim_lstm=48, dim_postnet=32)
    torch.save({"model": official}, tmp_path / "autovc.ckpt")
    result = subprocess.run([sys.executable, "-m", "training", "import-autovc",
                             str(tmp_path / "autovc.ckpt"), "--out", str(tmp_path / "imported"),
                             "--freq", "8"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    model = load_model(tmp_path / "imported")
    assert (model.model_type, model.freq, model.dim_neck) == ("autovc", 8, 4)
    assert "authors' own speaker encoder" in (tmp_path / "imported" / "README.md").read_text()
    (tmp_path / "junk.ckpt").write_bytes(b"junk")
    result = subprocess.run([sys.executable, "-m", "training", "import-autovc",
                             str(tmp_path / "junk.ckpt"), "--out", str(tmp_path / "x")],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_fine_tuning_from_a_published_model_on_aligned_phones(real_speech, tmp_path, feature_cache):
    """--init-from starts a run from a model's weights (here with label_input: the decoder also
    learns one-hot phones), resumes exactly, and refuses weights of another family."""
    from vc.models.ppgvc import PhoneticVC

    data = [real_speech / "vctk"]
    start = tmp_path / "start"
    PhoneticVC.from_preset("tiny").save_pretrained(start)
    config = tmp_path / "ppgvc-finetune.json"
    config.write_text(json.dumps({"model": {"preset": "tiny", "label_input": 0.5},
                                  "train": {"batch_size": 2, "segment_frames": 64, "lr": 1e-9, "log_every": 1,
                                            "validate_every": 2, "sample_every": 100, "checkpoint_every": 1,
                                            "warmup_steps": 0, "ema_decay": 0.0, "schedule": "constant"}}))
    whole, split = tmp_path / "whole", tmp_path / "split"
    result = train("ppgvc", data, whole, 2, feature_cache, "--init-from", str(start), config=config)
    assert result.returncode == 0, result.stderr[-3000:]
    tuned, initial = load_model(whole / "model"), load_model(start)
    assert tuned.label_input == 0.5
    for name, value in initial.state_dict().items():  # lr 1e-9: the weights it started from
        assert torch.allclose(tuned.state_dict()[name], value, atol=1e-5), name
    assert train("ppgvc", data, split, 1, feature_cache, "--init-from", str(start), config=config).returncode == 0
    resumed = train("ppgvc", data, split, 2, feature_cache, "--init-from", str(start), "--resume", config=config)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert losses(split) == pytest.approx(losses(whole), rel=1e-5)
    wrong = train("ppgvc", data, tmp_path / "wrong", 1, feature_cache, "--init-from", "hifigan-fast", config=config)
    assert wrong.returncode == 2 and "init_from 'hifigan-fast'" in wrong.stderr

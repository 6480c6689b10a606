"""GE2E speaker-encoder training: the loss and EER on known answers, a real training run
through the CLI, exact resume, the published weights in SpeakerEncoder, and bad input."""
from __future__ import annotations

import csv
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import REPO
from training.speaker_encoder import (
    GE2EBatches, SpeakerDataError, SpeakerEncoderTrainer, ge2e_loss, load_speaker_encoder_config,
)
from vc.errors import CheckpointError
from vc.speaker import GE2EModel, SpeakerEncoder
from vc.verification import all_pairs_eer, equal_error_rate, pair_scores


def read_safetensors(folder):
    import safetensors.torch
    return safetensors.torch.load_file(str(folder / "model.safetensors"))


@pytest.fixture(scope="module")
def clips(real_speech, tmp_path_factory):
    """Six real LibriSpeech speakers, one utterance each, in LibriSpeech's flat layout."""
    folder = tmp_path_factory.mktemp("clips")
    for path in sorted((real_speech / "librispeech" / "train-clean-100").glob("*.flac"))[:6]:
        (folder / path.name).symlink_to(path)
    return folder


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("ge2e-cache")  # shared: mels are computed once


def cli(*args):
    command = [sys.executable, "-m", "training", "speaker-encoder", *map(str, args), "--quiet"]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


# ----------------------------------------------------------------------------- known answers
def test_ge2e_loss_known_answers():
    w, b = torch.tensor([10.0], dtype=torch.float64), torch.tensor([-5.0], dtype=torch.float64)
    axes = torch.eye(3, dtype=torch.float64)
    # Perfectly separated: each utterance has cosine 1 with its own (leave-one-out) centroid
    # and 0 with the others: logits 5 vs -5, -5.
    separated = torch.stack([torch.stack([axes[j], axes[j]]) for j in range(3)])
    assert ge2e_loss(separated, w, b).item() == pytest.approx(math.log(1 + 2 * math.exp(-10)), rel=1e-4)
    # Speakers 0 and 1 swap an utterance: each of those four sees its own centroid (the other
    # utterance, orthogonal) at 0 and the other speaker's centroid (e0 + e1)/sqrt 2 at 1/sqrt 2.
    swapped = torch.stack([torch.stack([axes[0], axes[1]]), torch.stack([axes[1], axes[0]]),
                           torch.stack([axes[2], axes[2]])])
    wrong = math.log(2 * math.exp(-5) + math.exp(10 / math.sqrt(2) - 5)) + 5
    right = math.log(1 + 2 * math.exp(-10))
    assert ge2e_loss(swapped, w, b).item() == pytest.approx((4 * wrong + 2 * right) / 6, rel=1e-4)
    assert ge2e_loss(swapped, w, b).item() > math.log(3) > ge2e_loss(separated, w, b).item()
    # Gradients reach the embeddings and the similarity scale.
    embeds = torch.nn.functional.normalize(torch.randn(4, 3, 8, dtype=torch.float64), dim=-1).requires_grad_()
    w = torch.tensor([10.0], dtype=torch.float64, requires_grad=True)
    ge2e_loss(embeds, w, b).backward()
    assert embeds.grad.abs().sum() > 0 and w.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="2 speakers x 2 utterances"):
        ge2e_loss(torch.randn(3, 1, 8, dtype=torch.float64), w, b)


def test_all_pairs_eer_known_cases():
    # Two speakers on orthogonal axes: every genuine pair scores 1, every impostor pair 0.
    e = np.array([[1, 0], [1, 0], [1, 0], [0, 1], [0, 1]], float)
    labels = ["a", "a", "a", "b", "b"]
    figures = all_pairs_eer(e, labels)
    assert figures["eer"] == 0.0 and figures["genuine_pairs"] == 3 + 1
    assert figures["impostor_pairs"] == 3 * 2 and figures["speakers"] == 2
    # One clip of "a" sits exactly on "b"'s axis: of 4 genuine pairs 2 score 0, of 6 impostor
    # pairs 2 score 1 -> FRR 1/2 and FAR 1/3 at threshold 1 ... the rates meet at 5/12.
    e[0] = [0, 1]
    genuine, impostor = pair_scores(e, labels)
    assert sorted(genuine) == [0, 0, 1, 1] and sorted(impostor) == [0, 0, 0, 0, 1, 1]
    assert all_pairs_eer(e, labels)["eer"] == pytest.approx(equal_error_rate(genuine, impostor)[0])
    assert all_pairs_eer(e, labels)["eer"] == pytest.approx((1 / 3 + 1 / 2) / 2)
    with pytest.raises(ValueError, match="two clips of one speaker"):
        all_pairs_eer(np.eye(3), ["a", "b", "c"])


def test_batches_are_a_function_of_the_step():
    frames = torch.arange(400, dtype=torch.float32)[:, None].expand(400, 40)
    mels = {"one": [frames.clone()],                                        # values 0..399
            "many": [torch.full((30, 40), 1000.0 + i) for i in range(5)],   # short ones
            "few": [torch.full((200, 40), 2000.0), torch.full((250, 40), 2001.0)]}
    a, b = GE2EBatches(mels, 3, 4, 50, 60, seed=1), GE2EBatches(mels, 3, 4, 50, 60, seed=1)
    assert torch.equal(a.batch(7), b.batch(7)) and not torch.equal(a.batch(7), a.batch(8))
    batch = a.batch(7)
    assert batch.shape[0] == 12 and 50 <= batch.shape[1] <= 60 and batch.shape[2] == 40
    groups = {}
    for rows in batch.split(4):  # a speaker's M crops are consecutive rows
        first = float(rows[0, 0, 0])
        groups["one" if first < 1000 else "many" if first < 2000 else "few"] = rows
    assert set(groups) == {"one", "many", "few"}
    # One utterance: M crops of it, at different places.
    assert len({float(r[0, 0]) for r in groups["one"]}) > 1
    # Enough utterances: M different ones; shorter than the crop: zero power after them.
    assert len({float(r[0, 0]) for r in groups["many"]}) == 4 and (groups["many"][:, 30:] == 0).all()
    # Fewer than M: every utterance at least once.
    assert {float(r[0, 0]) for r in groups["few"]} == {2000.0, 2001.0}
    with pytest.raises(SpeakerDataError, match="--speakers-per-batch 3 or fewer"):
        GE2EBatches(mels, 4, 2, 50, 60, seed=0)


# ----------------------------------------------------------------------------- real runs
def test_one_step_from_scratch_through_the_cli(clips, real_speech, cache, tmp_path):
    run = tmp_path / "run"
    result = cli("--data", clips, "--eval-data", real_speech / "vctk", "--config", "tiny",
                 "--init", "scratch", "--steps", 1, "--out", run, "--cache", cache, "--umap-every", 1)
    assert result.returncode == 0, result.stderr
    assert "published weights" in result.stdout
    with open(run / "log.csv", newline="") as handle:
        rows = {int(r["step"]): r for r in csv.DictReader(handle)}
    assert set(rows) == {0, 1}  # step 0: the initial weights' held-out EER
    for step in (0, 1):
        assert 0 <= float(rows[step]["eval_eer"]) <= 1 and 0 <= float(rows[step]["val_eer"]) <= 1
    assert math.isfinite(float(rows[1]["loss"]))
    for step in (0, 1):  # the UMAP projections of the held-out embeddings
        png = run / "umap" / f"step{step:07d}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (run / "resume.pt").is_file() and (run / "loss.png").is_file()
    card = (run / "model" / "README.md").read_text()
    assert "ge2e" in card and "eval EER at step 0" in card and "eval trials" in card
    assert "SpeakerEncoder.from_pretrained" in card
    assert list((cache / "ge2e").glob("*.npz")) and not list((cache / "ge2e").glob(".*tmp"))

    # The published weights, loaded into SpeakerEncoder, embed as the trained network does.
    state = torch.load(run / "resume.pt", weights_only=True)["model"]
    trained = SpeakerEncoder(hidden=32, layers=1, embedding=32)
    trained.load_state_dict(state)
    loaded = SpeakerEncoder.from_pretrained(run / "model")
    assert isinstance(loaded, SpeakerEncoder) and not loaded.training
    clip = sorted(clips.glob("*.flac"))[0]
    assert np.array_equal(trained.eval().embed(clip), loaded.embed(clip))
    assert loaded.embed(clip).shape == (32,)


def test_resemblyzer_weights_round_trip_through_a_model_folder(tmp_path, test_other, speaker_encoder):
    GE2EModel.from_encoder(speaker_encoder).save_pretrained(tmp_path / "ge2e")
    loaded = SpeakerEncoder.from_pretrained(tmp_path / "ge2e")
    files = test_other["367"][:2]
    assert np.array_equal(loaded.embed_batch(files), speaker_encoder.embed_batch(files))
    assert (tmp_path / "ge2e" / "model.safetensors").stat().st_size < 6_000_000
    assert np.array_equal(SpeakerEncoder.from_pretrained("resemblyzer").embed(files[0]),
                          speaker_encoder.embed(files[0]))
    with pytest.raises(CheckpointError, match="no config.json|has no"):
        SpeakerEncoder.from_pretrained(tmp_path)


def test_resume_gives_the_weights_of_an_uninterrupted_run(clips, cache, tmp_path, one_thread):
    config = load_speaker_encoder_config("tiny")

    def train(out, steps, resume=False):
        SpeakerEncoderTrainer(config, [clips], out, steps, resume=resume, cache_dir=cache,
                              progress=False).train()

    train(tmp_path / "straight", 2)
    train(tmp_path / "halted", 1)
    with pytest.raises(CheckpointError, match="--resume"):
        train(tmp_path / "halted", 2)
    (tmp_path / "halted" / ".resume.pt.123.tmp").write_bytes(b"half-written")
    train(tmp_path / "halted", 2, resume=True)
    assert not (tmp_path / "halted" / ".resume.pt.123.tmp").exists()
    straight, halted = read_safetensors(tmp_path / "straight" / "model"), read_safetensors(tmp_path / "halted" / "model")
    assert straight.keys() == halted.keys()
    for name in straight:
        assert torch.equal(straight[name], halted[name]), name
    a = torch.load(tmp_path / "straight" / "resume.pt", weights_only=True)
    b = torch.load(tmp_path / "halted" / "resume.pt", weights_only=True)
    assert a["step"] == b["step"] == 2
    for key, value in a["optimizer"]["state"].items():
        assert torch.equal(value["exp_avg"], b["optimizer"]["state"][key]["exp_avg"])
    with open(tmp_path / "halted" / "log.csv", newline="") as handle:
        assert [int(r["step"]) for r in csv.DictReader(handle)] == [0, 1, 2]
    # A resumed run with other batch settings would not continue the same run.
    other = load_speaker_encoder_config("tiny", seed=5)
    with pytest.raises(CheckpointError, match="seed"):
        SpeakerEncoderTrainer(other, [clips], tmp_path / "halted", 3, resume=True, cache_dir=cache,
                              progress=False).train()


# ----------------------------------------------------------------------------- bad input
def test_bad_input_is_a_message(clips, cache, tmp_path):
    one = tmp_path / "one-speaker"
    one.mkdir()
    first = sorted(clips.glob("*.flac"))[0]
    (one / first.name).symlink_to(first.resolve())
    result = cli("--data", one, "--config", "tiny", "--steps", 1, "--out", tmp_path / "a", "--cache", cache)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "at least 2 speakers" in result.stderr and "has 1" in result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    result = cli("--data", empty, "--config", "tiny", "--steps", 1, "--out", tmp_path / "b", "--cache", cache)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "holds no audio" in result.stderr
    result = cli("--data", clips, "--config", "tiny", "--steps", 1, "--out", tmp_path / "c",
                 "--speakers-per-batch", 9, "--cache", cache)
    assert result.returncode == 2 and "--speakers-per-batch 4 or fewer" in result.stderr
    result = cli("--data", clips, "--config", "nonesuch", "--steps", 1, "--out", tmp_path / "d")
    assert result.returncode == 2 and "presets: finetune, tiny" in result.stderr

    refuse = load_speaker_encoder_config("tiny", few_utterances="refuse")
    with pytest.raises(SpeakerDataError, match=r"fewer than utterances_per_speaker=2 .*\(1\).*"
                                               r"at least 2 utterances"):
        SpeakerEncoderTrainer(refuse, [clips], tmp_path / "e", 1, cache_dir=cache, progress=False).train()
    with pytest.raises(ValueError, match="init 'resemblyzer' needs"):
        load_speaker_encoder_config("tiny", init="resemblyzer")

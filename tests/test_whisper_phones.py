"""Phones read from Whisper's encoder by a trained head: its training (exact resume) and the
shipped head on real speech against forced alignments (a conversion with it: test_transcript_guidance)."""
from __future__ import annotations

import csv
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO

from vc.audio import Audio, load_audio
from vc.data.align import ForcedAligner
from vc.data.phones import frame_labels
from vc.encoder_phones import EncoderPhones, HybridPhones, phone_guide, resample_labels
from vc.errors import CheckpointError
from vc.hub import load_model
from vc.models.whisper_phones import WhisperPhoneHead, viterbi

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def whisper_ready():
    from vc.asr import whisper_available
    if not whisper_available("base"):
        message = "whisper-base weights missing; run `python -m eval fetch-whisper` (scripts/setup.sh --tests does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def test_labels_are_resampled_by_time():
    """50 Hz labels read at 62.5 Hz: frame t takes the label nearest t * 0.8 input frames, the
    last one past the end."""
    out = resample_labels(torch.tensor([0, 1, 2, 3]), 50.0, 6, 62.5)
    assert out.tolist() == [0, 1, 2, 2, 3, 3]


def test_viterbi_keeps_a_phone_through_a_flicker():
    """One frame leans to another state by a little: frame by frame it flickers, under a
    transition cost it does not; a clear change still happens."""
    scores = np.log(np.array([[0.9, 0.9, 0.45, 0.9, 0.1, 0.1],
                              [0.1, 0.1, 0.55, 0.1, 0.9, 0.9]]))
    assert viterbi(scores, np.zeros((2, 2))).tolist() == [0, 0, 1, 0, 1, 1]
    sticky = np.log(np.array([[0.9, 0.1], [0.1, 0.9]]))
    assert viterbi(scores, sticky).tolist() == [0, 0, 0, 0, 1, 1]
    assert viterbi(np.zeros((2, 0)), sticky).tolist() == []


def test_the_bigram_is_counted_from_labels():
    head = WhisperPhoneHead.from_preset("tiny")
    head.count_transitions([[0, 0, 0, 1], [1, 1, 0]])
    probs = head.transitions.exp()
    assert torch.allclose(probs.sum(1), torch.ones(len(probs)))
    assert probs[0, 0] > probs[0, 1] > probs[0, 2]  # 2 x (0->0), 1 x (0->1), 0 x (0->2), add-one smoothed
    with pytest.raises(ValueError, match="phone labels"):
        head.count_transitions([[0, 99]])


def test_the_head_checks_its_input():
    head = WhisperPhoneHead.from_preset("tiny")
    with pytest.raises(ValueError, match="512"):
        head(torch.zeros(1, 80, 10))
    with pytest.raises(ValueError, match="tail_seconds"):
        WhisperPhoneHead(tail_seconds=40.0)
    with pytest.raises(ValueError, match="hint"):
        head.read(np.zeros((10, 512), np.float32), hint=np.zeros(9, np.int64))
    with pytest.raises(ValueError, match="hint_weight"):
        HybridPhones("base", head, hint_weight=-1.0)


def _train(data, out, steps, cache, *extra):
    command = [sys.executable, "-m", "training", "whisper-phones", "--data", str(data), "--steps", str(steps),
               "--out", str(out), "--cache", str(cache), "--preset", "tiny", "--batch-size", "4",
               "--crop-frames", "100", "--val-fraction", "0.5", "--log-every", "1", "--validate-every", "2",
               "--checkpoint-every", "2", "--quiet", *extra]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)


def _log(run):
    with open(run / "log.csv", newline="") as handle:
        return {int(r["step"]): (float(r["ce"]), r["val_accuracy"], r["val_phone_error"])
                for r in csv.DictReader(handle)}


def test_training_resumes_exactly(whisper_ready, aligned_vctk, tmp_path):
    cache = tmp_path / "features"
    whole, split = tmp_path / "whole", tmp_path / "split"
    result = _train(aligned_vctk, whole, 4, cache)
    assert result.returncode == 0, result.stderr[-3000:]
    assert _train(aligned_vctk, split, 2, cache).returncode == 0
    resumed = _train(aligned_vctk, split, 4, cache, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _log(split) == _log(whole)
    assert 0 < float(_log(whole)[4][1]) <= 1  # held-out frame accuracy, measured
    assert 0 < float(_log(whole)[4][2])  # and the phone error rate of what it decodes
    for name in ("resume.pt", "loss.png", "model/config.json", "model/README.md"):
        assert (whole / name).exists(), name
    head = load_model(whole / "model")
    assert isinstance(head, WhisperPhoneHead) and head.transitions.exp().sum(1).allclose(torch.ones(40), atol=1e-2)
    assert not torch.allclose(head.transitions, head.transitions[0, 0])  # counted, not left uniform
    again = _train(aligned_vctk, whole, 4, cache)  # a finished run is not overwritten by accident
    assert again.returncode != 0 and "--resume" in again.stderr


def _vctk_truth(real_speech):
    """Four VCTK clips the head never heard, each with its pocketsphinx alignment at 62.5 Hz."""
    texts = dict(line.split("\t", 1) for line in
                 (real_speech / "vctk" / "transcripts.tsv").read_text().splitlines()[1:])
    clips = [c for speaker in ("p225", "p226") for c in sorted((real_speech / "vctk" / speaker).glob("*.wav"))[4:6]]
    aligner = ForcedAligner()
    for path in clips:
        audio = load_audio(path).resample(16000)
        frames = audio.samples.size // 256 + 1
        yield audio, np.array(frame_labels(aligner.align(audio, texts[path.stem.split("_")[1]].strip()), frames, 62.5))


def test_shipped_head_labels_real_speech_like_the_aligner(whisper_ready, real_speech):
    """VCTK speakers the head never heard: most frames get the phone pocketsphinx aligns to the
    transcript; leaning toward Whisper's aligned transcript, more do."""
    guide = EncoderPhones("whisper-phones", threads=2)
    hybrid = phone_guide("base+encoder")
    assert isinstance(hybrid, HybridPhones)
    right = {"head": 0, "hybrid": 0}
    total = 0
    for audio, truth in _vctk_truth(real_speech):
        frames = truth.size
        found, both = guide.labels(audio, frames, 62.5), hybrid.labels(audio, frames, 62.5)
        assert found is not None and found.labels.shape == (frames,) and both.labels.shape == (frames,)
        assert both.text  # what Whisper heard
        right["head"] += int((found.labels.numpy() == truth).sum())
        right["hybrid"] += int((both.labels.numpy() == truth).sum())
        total += frames
    assert right["head"] / total > 0.6 and right["hybrid"] > right["head"], (right, total)
    silence = Audio(np.zeros(16000, dtype=np.float32), 16000)
    assert guide.labels(silence, 63, 62.5) is None  # nothing said: the converter's own recogniser
    assert hybrid.labels(silence, 63, 62.5) is None
    with pytest.raises(CheckpointError, match="not a Whisper phone head"):
        EncoderPhones("ddsp-fast").load()

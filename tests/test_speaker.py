"""Our GE2E encoder reproduces Resemblyzer's embeddings on real speech and separates speakers."""
from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import torch

from vc.errors import AudioError, CheckpointError
from vc.speaker import SpeakerEncoder, cosine, resemblyzer_weights_path


def test_embeddings_match_resemblyzer(test_other, speaker_encoder):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # webrtcvad's pkg_resources deprecation
        from resemblyzer import VoiceEncoder, preprocess_wav
    reference = VoiceEncoder(device="cpu", verbose=False)
    for speaker, files in test_other.items():
        for path in files[:2]:
            theirs = reference.embed_utterance(preprocess_wav(path))
            ours = speaker_encoder.embed(path)  # our own loading and preprocessing
            assert ours.shape == (256,)
            assert np.linalg.norm(ours) == pytest.approx(1.0, abs=1e-5)
            assert cosine(ours, theirs) >= 0.999, (speaker, path.name)


def test_same_speaker_is_closer_than_other_speakers(test_other, speaker_encoder):
    embeds = {spk: speaker_encoder.embed_batch(files[:4]) for spk, files in test_other.items()}
    same = [cosine(a, b) for e in embeds.values() for a, b in itertools.combinations(e, 2)]
    cross = [cosine(a, b) for (s1, e1), (s2, e2) in itertools.combinations(embeds.items(), 2)
             for a in e1 for b in e2]
    assert np.mean(same) > np.mean(cross) + 0.1
    # Every utterance is nearer its own speaker's centroid than any other speaker's.
    centroids = {spk: speaker_encoder.embed_many(files[4:8]) for spk, files in test_other.items()}
    for spk, e in embeds.items():
        for vector in e:
            best = max(centroids, key=lambda other: cosine(vector, centroids[other]))
            assert best == spk


def test_embed_many_is_a_unit_mean(test_other, speaker_encoder):
    files = test_other["2033"][:3]
    single = speaker_encoder.embed_batch(files)
    many = speaker_encoder.embed_many(files)
    expected = single.mean(axis=0)
    assert np.allclose(many, expected / np.linalg.norm(expected), atol=1e-6)
    with pytest.raises(AudioError, match="no clips"):
        speaker_encoder.embed_many([])


def test_silence_is_refused(speaker_encoder):
    with pytest.raises(AudioError, match="silent"):
        speaker_encoder.embed(np.zeros(32000, dtype=np.float32), source_rate=16000)


def test_weights_load_strictly(tmp_path):
    state = torch.load(resemblyzer_weights_path(), map_location="cpu",
                       weights_only=True)["model_state"]
    extra = dict(state, **{"projection.weight": torch.zeros(2, 2)})
    torch.save({"model_state": extra}, tmp_path / "extra.pt")
    with pytest.raises(CheckpointError, match="projection.weight"):
        SpeakerEncoder.pretrained(weights=tmp_path / "extra.pt")
    missing = {k: v for k, v in state.items() if k != "linear.bias"}
    torch.save({"model_state": missing}, tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="linear.bias"):
        SpeakerEncoder.pretrained(weights=tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="could not read"):
        SpeakerEncoder.pretrained(weights=tmp_path / "junk.pt")

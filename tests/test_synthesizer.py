"""The text-to-mel synthesizer, its training and the cloner, on real aligned speech."""
from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import REPO, fit
from vc.cloning import VoiceCloner
from vc.data import Segment
from vc.errors import AudioError
from vc.hub import load_model
from vc.models.synthesizer import (
    PAD, SIL, DurationSynthesizer, alignment_tokens, length_regulate, phone_pitch,
)
from vc.text import SYMBOL_INDEX, TextError, symbols_to_ids

pytestmark = pytest.mark.usefixtures("one_thread")


def test_alignment_becomes_tokens_with_frame_counts_that_fill_the_mel():
    # 10 frames/s: sil 0-0.2, gap 0.2-0.3, "hh" 0.3-0.55, "ay" 0.55-0.8, "pau" to the end
    segments = [Segment(0.0, 0.2, "sil"), Segment(0.3, 0.55, "hh"), Segment(0.55, 0.8, "ay"),
                Segment(0.8, 1.0, "pau")]
    tokens, lengths = alignment_tokens(segments, frames=12, frame_rate=10.0)
    assert tokens == [SIL, SYMBOL_INDEX["hh"], SYMBOL_INDEX["ay"], SIL]
    assert lengths == [3, 3, 2, 4]  # the gap joins the first pause; the tail pads the last
    assert sum(lengths) == 12
    espeak = [Segment(0.0, 0.5, "aI"), Segment(0.5, 1.0, "_")]
    assert alignment_tokens(espeak, 10, 10.0, "espeak") == ([SYMBOL_INDEX["ay"], SIL], [5, 5])


def test_text_ids_become_tokens_with_pauses_for_punctuation():
    ids = symbols_to_ids(["hh", "ay", " ", "dh", "eh", "r", ",", " ", "y", "uw", "."])
    tokens = DurationSynthesizer.tokens(ids)
    names = DurationSynthesizer.from_preset("tiny").describe_tokens(tokens)
    assert names == ["<sil>", "hh", "ay", "dh", "eh", "r", "<sil>", "y", "uw", "<sil>"]
    with pytest.raises(TextError, match="no phones"):
        DurationSynthesizer.tokens(symbols_to_ids([",", "."]))
    with pytest.raises(TextError, match="not a synthesizer input"):
        DurationSynthesizer.tokens([PAD])


def test_length_regulator_repeats_each_token_by_its_frames():
    hidden = torch.tensor([[[1.0, 2.0, 3.0]], [[4.0, 5.0, 0.0]]])  # (2, 1, 3)
    frames, lengths = length_regulate(hidden, torch.tensor([[2, 0, 1], [1, 3, 0]]))
    assert lengths.tolist() == [3, 4]
    assert frames[0, 0].tolist() == [1, 1, 3, 0] and frames[1, 0].tolist() == [4, 5, 5, 5]
    pitch = phone_pitch([2, 2], torch.tensor([1.0, 3.0, 5.0, 7.0]), torch.tensor([1.0, 1.0, 0.0, 0.0]))
    assert pitch.tolist() == [2.0, 0.0]  # the second token has no voiced frame


def test_synthesizer_learns_a_real_utterance_and_speaks_it_at_the_rate_asked(real_speech):
    """Teacher-forced fitting on one aligned real clip: the mel error falls, and inference
    gives every phone at least one frame and scales length with the rate."""
    torch.manual_seed(0)
    clip = real_speech / "vctk" / "p225" / "p225_003.wav"
    from vc.data.align import ForcedAligner
    from vc.mel import MelConfig, MelSpectrogram
    from vc.audio import prepare_speech
    segments = ForcedAligner().align(clip, "Six spoons of fresh snow peas, five thick slabs of "
                                           "blue cheese, and maybe a snack for her brother Bob.")
    mel_config = MelConfig()
    mel = MelSpectrogram(mel_config)(prepare_speech(clip, mel_config.sample_rate, trim=False).to_tensor())
    tokens, lengths = alignment_tokens(segments, mel.shape[-1], mel_config.frame_rate)
    model = DurationSynthesizer.from_preset("tiny")
    batch = {"tokens": torch.tensor([tokens]), "durations": torch.tensor([lengths]),
             "pitch": torch.zeros(1, len(tokens)), "mel": mel[None], "embedding": torch.randn(1, 256)}
    history = fit(model, batch, steps=60, lr=3e-3)
    assert history[-1][1]["recon"] < 0.6 * history[0][1]["recon"]
    model.eval()
    slow, frames = model.synthesize(tokens, batch["embedding"][0], rate=0.8)
    fast, _ = model.synthesize(tokens, batch["embedding"][0], rate=1.6)
    phones = torch.tensor(tokens) != SIL
    assert (frames[phones] >= 1).all() and slow.shape[0] == 80
    assert fast.shape[-1] < slow.shape[-1]
    with pytest.raises(ValueError, match="rate"):
        model.synthesize(tokens, batch["embedding"][0], rate=10)


def _train(data, out, steps, cache, *extra):
    config = out.parent / "synth-tiny.json"
    config.write_text('{"model": {"preset": "tiny"}, "train": {"batch_size": 2, "segment_frames": 96, '
                      '"log_every": 1, "validate_every": 2, "sample_every": 4, "checkpoint_every": 2, '
                      '"warmup_steps": 2, "val_fraction": 0.5}}')
    command = [sys.executable, "-m", "training", "synthesizer", "--data", str(data), "--config",
               str(config), "--steps", str(steps), "--out", str(out), "--cache", str(cache), "--quiet", *extra]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)


def _losses(run):
    with open(run / "log.csv", newline="") as handle:
        return {int(r["step"]): float(r["loss"]) for r in csv.DictReader(handle)}


def test_training_resumes_exactly_and_the_cloner_speaks(aligned_vctk, real_speech, tmp_path):
    cache = tmp_path / "features"
    whole = tmp_path / "whole"
    result = _train(aligned_vctk, whole, 4, cache)
    assert result.returncode == 0, result.stderr[-3000:]
    split = tmp_path / "split"
    assert _train(aligned_vctk, split, 2, cache).returncode == 0
    resumed = _train(aligned_vctk, split, 4, cache, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _losses(split) == pytest.approx(_losses(whole), rel=1e-5)
    for name in ("resume.pt", "loss.png", "model/config.json", "model/README.md",
                 "samples/step0000004.wav", "samples/step0000004-other.wav",
                 "samples/step0000004.png", "samples/step0000004-durations.png"):
        assert (whole / name).exists(), name
    assert load_model(whole / "model").model_type == "duration-synth"

    # The front object: two sentences, one reference clip, from the run folder.
    cloner = VoiceCloner.from_pretrained(whole)
    reference = sorted((real_speech / "vctk" / "p226").glob("*.wav"))[5]
    speech = cloner.clone("Hello there. It costs $5, doesn't it?", reference, rate=1.0)
    assert speech.sentences == ["Hello there.", "It costs $5, doesn't it?"]
    assert speech.audio.sample_rate == 16000 and np.isfinite(speech.audio.samples).all()
    assert speech.mel.shape[-1] == sum(int(d.sum()) for d in speech.durations) + \
        round(cloner.pause_seconds * cloner.mel_config.frame_rate)
    assert -1.0 <= cloner.similarity(speech.audio, speech.reference_embedding) <= 1.0
    faster = cloner.speak("Hello there. It costs $5, doesn't it?", reference, rate=1.5)
    assert faster.duration < speech.audio.duration

    # Bad input: messages that say what was wrong.
    for text, message in (("", "no text"), ("a" * 1001, "over this cloner's limit"),
                          ("€€€", "could not say")):
        with pytest.raises(TextError, match=message):
            cloner.speak(text, reference)
    silent = (16000, np.zeros(16000 * 3, dtype=np.float32))
    with pytest.raises(AudioError):
        cloner.speak("Hello.", silent)
    with pytest.raises(ValueError, match="rate"):
        cloner.speak("Hello.", reference, rate=3)


def test_cloner_can_borrow_the_reference_frames(real_speech, tmp_path):
    from vc.models.ppgvc import PhoneticVC
    from vc.pipeline import KnnRefinement
    torch.manual_seed(0)
    synthesizer = DurationSynthesizer.from_preset("tiny")
    reference = sorted((real_speech / "vctk" / "p226").glob("*.wav"))[:2]
    plain = VoiceCloner(synthesizer).clone("A short test.", reference)
    matched = VoiceCloner(synthesizer, knn=KnnRefinement(k=1, blend=1.0, min_similarity=-1.0),
                          content_model=PhoneticVC.from_preset("tiny")).clone("A short test.", reference)
    assert matched.mel.shape == plain.mel.shape and not torch.allclose(matched.mel, plain.mel)
    # blend 1 with every frame matched: each output frame is one of the reference's own frames
    from vc.mel import MelSpectrogram
    from vc.audio import prepare_speech
    frames = torch.cat([MelSpectrogram(synthesizer.mel)(prepare_speech(r, 16000).to_tensor()) for r in reference], 1)
    nearest = lambda mel: torch.cdist(mel.T, frames.T).min(dim=1).values
    assert nearest(matched.mel).max() < 0.1 < nearest(plain.mel).min()
    with pytest.raises(ValueError, match="content_model"):
        VoiceCloner(synthesizer, knn=KnnRefinement())


def test_clone_cli(aligned_vctk, real_speech, tmp_path):
    model = DurationSynthesizer.from_preset("tiny").save_pretrained(tmp_path / "tiny")
    reference = sorted((real_speech / "vctk" / "p225").glob("*.wav"))[0]
    run = lambda *args: subprocess.run([sys.executable, "-m", "vc", "clone", "--model", str(model),
                                        "--reference", str(reference), *args],
                                       cwd=REPO, capture_output=True, text=True, timeout=300)
    done = run("--text", "Good morning.", "--out", str(tmp_path / "out.wav"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "out.wav").stat().st_size > 1000
    for args, message in ((("--text", "", "--out", str(tmp_path / "x.wav")), "no text"),
                          (("--text", "Hi.", "--rate", "5", "--out", str(tmp_path / "x.wav")), "rate"),
                          (("--text", "Hi.", "--adapt-steps", "-1", "--out", str(tmp_path / "x.wav")),
                           "--adapt-steps: must be a whole number from 0 to 500")):
        failed = run(*args)
        assert failed.returncode == 2 and message in failed.stderr and "Traceback" not in failed.stderr


def test_embedding_noise_moves_each_speaker_embedding_a_little_and_reproducibly(aligned_vctk, tmp_path):
    from training.features import compute_features
    from training.synth_loop import TokenBatches
    from vc.data import read_corpus
    from vc.mel import MelConfig

    mel = MelConfig()
    features, _ = compute_features(read_corpus(aligned_vctk), mel, tmp_path / "features", progress=False,
                                   frame_targets=("phones", "f0"))
    clean = TokenBatches(features, mel.frame_rate, 96, 4, seed=0, silence=-11.5)
    noisy = TokenBatches(features, mel.frame_rate, 96, 4, seed=0, silence=-11.5, embedding_noise=0.03)
    a, b = clean.batch(3), noisy.batch(3)
    assert torch.equal(a["tokens"], b["tokens"]) and torch.equal(a["mel"], b["mel"])  # same items
    cosine = (a["embedding"] * b["embedding"]).sum(-1)
    assert ((cosine > 0.85) & (cosine < 0.99)).all(), cosine  # near, but not the same
    assert torch.allclose(b["embedding"].norm(dim=-1), torch.ones(4)) and (b["embedding"] >= 0).all()
    assert torch.equal(noisy.batch(3)["embedding"], b["embedding"])  # resume sees the same noise
    assert not torch.equal(noisy.batch(4)["embedding"], b["embedding"])

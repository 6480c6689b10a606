"""Vocoder training: HiFi-GAN's losses on known answers, a real overfit, and the CLI run as a user
runs it (GAN phase, exact resume, generator-only publishing, --mels-from, import-hifigan)."""
from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
import torch

from conftest import REPO
from training.gan import (
    Discriminators, MultiResolutionMelLoss, SpectrumLoss, discriminator_loss,
    feature_matching_loss, generator_adversarial_loss,
)
from vc.audio import load_audio, prepare_speech
from vc.hub import load_model
from vc.mel import MelConfig, MelSpectrogram
from vc.pipeline import VoiceConverter, load_vocoder
from vc.vocoders import HiFiGAN

pytestmark = pytest.mark.usefixtures("one_thread")


def test_gan_losses_on_known_answers():
    ones, zeros = torch.ones(2, 5), torch.zeros(2, 5)
    feats = [torch.randn(2, 3, 4)]
    assert discriminator_loss([(ones, feats)], [(zeros, feats)]).item() == 0.0
    assert discriminator_loss([(zeros, feats)], [(ones, feats)]).item() == 2.0
    assert generator_adversarial_loss([(ones, feats)]).item() == 0.0
    assert feature_matching_loss([(ones, feats)], [(ones, feats)]).item() == 0.0
    shifted = [f + 0.5 for f in feats]
    assert feature_matching_loss([(ones, feats)], [(ones, shifted)]).item() == pytest.approx(1.0)
    wav = torch.randn(2, 4096) * 0.1
    loss = MultiResolutionMelLoss(MelConfig())
    assert loss(wav, wav).item() == 0.0 and loss(wav * 0.5, wav).item() > 0.5


def test_spectrum_loss_on_known_answers():
    wav = torch.randn(2, 4096) * 0.1
    spec = torch.stft(wav, 1024, 256, window=torch.hann_window(1024), center=True,
                      return_complex=True)[..., :16]
    log_magnitude, phase = spec.abs().clamp_min(1e-5).log(), spec.angle()
    loss = SpectrumLoss(1024, 256)
    magnitude, phase_error = loss(log_magnitude, phase, wav[:, :16 * 256])
    assert magnitude.item() == pytest.approx(0.0, abs=1e-6) and phase_error.item() == pytest.approx(0.0, abs=1e-4)
    # Whole turns are no error; a constant offset is an instantaneous-phase error only.
    assert loss(log_magnitude, phase + 2 * torch.pi, wav)[1].item() == pytest.approx(0.0, abs=1e-4)
    shifted = loss(log_magnitude, phase + torch.pi / 2, wav)[1].item()
    assert shifted == pytest.approx(torch.pi / 2, abs=1e-3)
    assert loss(log_magnitude + 1.0, phase, wav)[0].item() == pytest.approx(1.0, abs=1e-4)


def test_discriminators_judge_every_period_and_scale():
    d = Discriminators(width=0.125)
    outputs = d(torch.randn(2, 4096))
    assert len(outputs) == 5 + 3  # periods 2, 3, 5, 7, 11 and three scales
    for score, features in outputs:
        assert score.shape[0] == 2 and len(features) >= 6


def test_resolution_discriminators_judge_spectra_and_learn_to_tell_noise_from_tone():
    """MPD + MRD: eight judges, and 50 steps teach each spectrogram judge to score a tone above noise."""
    torch.manual_seed(0)
    d = Discriminators(width=0.125, kind="mpd+mrd")
    t = torch.arange(8192) / 16000
    real = torch.sin(2 * torch.pi * 220 * t).repeat(2, 1) * 0.5
    fake = torch.randn(2, 8192) * 0.1
    assert len(d(real)) == 5 + 3  # periods 2, 3, 5, 7, 11 and three STFT resolutions
    optimizer = torch.optim.AdamW(d.parameters(), 1e-3)
    for _ in range(50):
        optimizer.zero_grad()
        discriminator_loss(d(real), d(fake)).backward()
        optimizer.step()
    with torch.no_grad():
        real_scores = torch.stack([s.mean() for s, _ in d.mrd(real.unsqueeze(1))])
        fake_scores = torch.stack([s.mean() for s, _ in d.mrd(fake.unsqueeze(1))])
    assert bool((real_scores > fake_scores + 0.5).all())


def test_unknown_discriminator_kind_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="mpd\\+msd, mpd\\+mrd"):
        Discriminators(kind="msd")


def test_generator_learns_a_real_clip(real_speech):
    """The fast preset, mel loss only, on one real utterance: the loss must fall to under half
    of where it started."""
    torch.manual_seed(0)
    mel_config = MelConfig()
    clip = prepare_speech(sorted((real_speech / "vctk" / "p225").glob("*.wav"))[0], 16000)
    wav = clip.to_tensor()[: 64 * 256 * 2].reshape(2, -1)
    mel = MelSpectrogram(mel_config)(wav)[..., :64]
    model = HiFiGAN.from_preset("fast")
    loss_fn = MultiResolutionMelLoss(mel_config)
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3, betas=(0.8, 0.99))
    history = []
    for _ in range(150):
        loss = loss_fn(model(mel), wav)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    assert history[-1] < 0.5 * history[0]


# ------------------------------------------------------------------------------------- the CLI
@pytest.fixture(scope="module")
def feature_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("vocoder-features")


def train(data, out, steps, cache, *extra, preset="tiny", adversarial_start=1,
          discriminators="mpd+msd", family="hifigan"):
    config = out.parent / f"{family}-{preset}-{discriminators}-test.json"
    config.write_text(json.dumps({"model": {"preset": preset}, "train": {
        "batch_size": 2, "segment_frames": 16, "log_every": 1, "validate_every": 2,
        "sample_every": 2, "checkpoint_every": 2, "adversarial_start": adversarial_start,
        "discriminator_width": 0.125, "discriminators": discriminators, "magnitude_loss_weight": 45.0, "phase_loss_weight": 100.0}}))
    command = [sys.executable, "-m", "training", family, "--data", *map(str, data),
               "--config", str(config), "--steps", str(steps), "--out", str(out),
               "--cache", str(cache), "--quiet", *extra]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)


def logged(run_dir):
    with open(run_dir / "log.csv", newline="") as handle:
        return {int(r["step"]): (float(r["loss"]), r["d_loss"]) for r in csv.DictReader(handle)}


def test_train_with_discriminators_resume_and_publish(real_speech, tmp_path, feature_cache):
    data = [real_speech / "vctk"]
    whole = tmp_path / "whole"
    result = train(data, whole, 4, feature_cache)
    assert result.returncode == 0, result.stderr[-3000:]
    split = tmp_path / "split"
    assert train(data, split, 2, feature_cache).returncode == 0
    refused = train(data, split, 4, feature_cache)
    assert refused.returncode == 2 and "--resume" in refused.stderr
    resumed = train(data, split, 4, feature_cache, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # Step 1 trains on the mel loss alone, 2-4 with the discriminators; resuming after step 2
    # (discriminators and both optimizers mid-training) reproduces the uninterrupted run.
    whole_log, split_log = logged(whole), logged(split)
    assert sorted(whole_log) == [1, 2, 3, 4]
    assert [whole_log[s][1] == "" for s in (1, 2, 3, 4)] == [True, False, False, False]
    assert [split_log[s][0] for s in range(1, 5)] == pytest.approx(
        [whole_log[s][0] for s in range(1, 5)], rel=1e-5)

    # The published folder holds the generator only; the discriminators live in resume.pt.
    published = sorted(p.name for p in (whole / "model").iterdir())
    assert published == ["README.md", "config.json", "model.safetensors"]
    state = torch.load(whole / "resume.pt", weights_only=True)
    assert {"generator", "discriminators", "opt_g", "opt_d", "step"} <= set(state)
    for name in ("loss.png", "samples/step0000004.wav", "samples/step0000004.png"):
        assert (whole / name).exists(), name
    assert "val_mel_l1" in open(whole / "log.csv").readline()
    assert "HiFi-GAN" in (whole / "model" / "README.md").read_text()

    # A run folder is a vocoder for the converter, the CLI and load_vocoder.
    vocoder = load_vocoder(whole, MelConfig())
    assert isinstance(vocoder, HiFiGAN)
    assert_resynthesizes(whole, real_speech, tmp_path)


def assert_resynthesizes(run_dir, real_speech, tmp_path):
    """`python -m vc resynthesize` with a training run folder as the vocoder: a clip as long
    as the prepared source."""
    source = sorted((real_speech / "vctk" / "p225").glob("*.wav"))[0]
    out = tmp_path / "resynth.wav"
    cli = subprocess.run([sys.executable, "-m", "vc", "resynthesize", str(source), "--out", str(out),
                          "--vocoder", str(run_dir)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert abs(load_audio(out).duration - prepare_speech(source, 16000).duration) < 0.05


def test_fine_tune_on_a_conversion_models_mels(real_speech, tmp_path, feature_cache):
    from vc.models.vqvc import VQVC
    torch.manual_seed(0)
    converter_dir = VQVC.from_preset("small").save_pretrained(tmp_path / "vqvc")
    run = tmp_path / "gta"
    result = train([real_speech / "vctk"], run, 2, feature_cache, "--mels-from", str(converter_dir),
                   preset="fast", adversarial_start=10)
    assert result.returncode == 0, result.stderr[-3000:]
    saved = json.loads((run / "run_config.json").read_text())
    assert saved["mels_from"] == str(converter_dir)
    with open(run / "log.csv", newline="") as handle:  # the inverse-STFT head's direct losses
        assert {"magnitude", "phase"} <= set(next(csv.DictReader(handle)))
    assert "reconstructed by" in (run / "model" / "README.md").read_text()
    # The vocoder it makes goes with that converter.
    converter = VoiceConverter.from_pretrained(converter_dir, vocoder=str(run))
    assert isinstance(converter.vocoder, HiFiGAN)
    # Resuming with other input mels would mix two trainings: refused.
    other = train([real_speech / "vctk"], run, 4, feature_cache, "--resume", preset="fast",
                  adversarial_start=10)
    assert other.returncode == 2 and "--mels-from" in other.stderr
    # A model with other mel settings cannot feed this vocoder.
    foreign = VQVC.from_preset("small", mel=MelConfig(n_mels=64)).save_pretrained(tmp_path / "v64")
    bad = train([real_speech / "vctk"], tmp_path / "bad", 2, feature_cache, "--mels-from", str(foreign),
                preset="fast")
    assert bad.returncode == 2 and "n_mels" in bad.stderr and "Traceback" not in bad.stderr


def test_import_hifigan_cli(tmp_path):
    from test_hifigan import OFFICIAL_CONFIG, _OfficialGenerator
    torch.manual_seed(0)
    torch.save({"generator": _OfficialGenerator(OFFICIAL_CONFIG).state_dict()}, tmp_path / "g_00100000")
    (tmp_path / "config.json").write_text(json.dumps(OFFICIAL_CONFIG))
    result = subprocess.run([sys.executable, "-m", "training", "import-hifigan", str(tmp_path / "g_00100000"),
                             "--config", str(tmp_path / "config.json"), "--out", str(tmp_path / "imported")],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    model = load_model(tmp_path / "imported")
    assert model.model_type == "hifigan" and model.mel.sample_rate == 22050


def test_guided_and_teacher_forced_mels_line_up_with_the_recording(aligned_vctk, feature_cache):
    """The shipped PPG-VC told the aligned phones, and the shipped synthesizer teacher-forced on
    the alignment, each give a mel frame for every recorded frame; matching each phone to the
    utterance itself brings its speech closer to the recording, and both beat the utterance's
    average speech frame by far (they follow the content in time)."""
    from training.features import compute_features
    from training.loop import load_utterances
    from training.vocoder_data import load_mel_model, mel_model_targets, reconstructed_mels
    from vc.phone_matching import PhoneMeanMatching
    mel_config = MelConfig()
    models = [load_mel_model(REPO / "checkpoints" / name, mel_config) for name in ("ppgvc-small", "synth-small")]
    assert mel_model_targets(models) == ("f0", "phones")
    features, _ = compute_features(load_utterances([str(aligned_vctk)]), mel_config, feature_cache,
                                   progress=False, frame_targets=("phones", "f0"))
    for model in models:
        plain = reconstructed_mels(model, features, progress=False)
        matched = reconstructed_mels(model, features, PhoneMeanMatching(), progress=False)
        for f, a, b in zip(features, plain, matched):
            assert a.shape == b.shape == f.mel.shape
            speech = f.frames["phones"] > 0
            truth = f.mel[:, speech]
            average = (truth.mean(1, keepdim=True) - truth).abs().mean()
            error, matched_error = (a[:, speech] - truth).abs().mean(), (b[:, speech] - truth).abs().mean()
            assert matched_error < error and matched_error < 0.8 * average, (type(model).__name__, f.utterance.path.name)
    # The phones are what the guided converter says: its own recogniser's guess gives another mel.
    ppgvc = models[0]
    guided = reconstructed_mels(ppgvc, features[:1], progress=False)[0]
    speaker = torch.nn.functional.normalize(features[0].embedding, dim=0)
    with torch.inference_mode():
        own = ppgvc.convert(features[0].mel[None], speaker[None], speaker[None])[0]
    assert (guided - own).abs().mean() > 0.05


def test_fine_tune_from_a_vocoder_on_guided_synthesized_and_true_mels(aligned_vctk, tmp_path, feature_cache):
    run = tmp_path / "gta"
    config = tmp_path / "gta.json"
    config.write_text(json.dumps({"model": {"preset": "fast"}, "train": {
        "batch_size": 2, "segment_frames": 16, "lr": 1e-9, "log_every": 1, "validate_every": 2,
        "sample_every": 2, "checkpoint_every": 2, "adversarial_start": 100, "val_fraction": 0.25}}))
    command = [sys.executable, "-m", "training", "hifigan", "--data", str(aligned_vctk), "--config",
               str(config), "--steps", "2", "--out", str(run), "--cache", str(feature_cache), "--quiet",
               "--init-from", "checkpoints/hifigan-fast", "--match-phones",
               "--mels-from", "checkpoints/ppgvc-small", "checkpoints/synth-small", "truth"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    saved = json.loads((run / "run_config.json").read_text())
    assert saved["mels_from"] == ["checkpoints/ppgvc-small", "checkpoints/synth-small", "truth"]
    assert saved["match_phones"] is True
    card = (run / "model" / "README.md").read_text()
    assert "matched phone by phone" in card and "fine-tuned from checkpoints/hifigan-fast" in card
    # At a vanishing learning rate the published weights are still the ones it started from.
    start, tuned = load_model(REPO / "checkpoints" / "hifigan-fast"), load_model(run / "model")
    for name, value in start.state_dict().items():
        assert torch.allclose(value.float(), tuned.state_dict()[name].float(), atol=1e-3), name
    # Matching needs a model's reconstructions to match.
    bad = subprocess.run(command[:command.index("--match-phones") + 1] + ["--out", str(tmp_path / "bad")],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "--mels-from" in bad.stderr and "Traceback" not in bad.stderr


def test_spectrogram_discriminators_resume_exactly(real_speech, tmp_path, feature_cache):
    """The MPD + MRD pair (the CPU GAN fine-tune's) resumes mid-adversarial like MPD + MSD."""
    data = [real_speech / "vctk"]
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert train(data, whole, 3, feature_cache, discriminators="mpd+mrd").returncode == 0
    assert train(data, split, 2, feature_cache, discriminators="mpd+mrd").returncode == 0
    resumed = train(data, split, 3, feature_cache, "--resume", discriminators="mpd+mrd")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    whole_log, split_log = logged(whole), logged(split)
    assert whole_log[3][1] != ""
    assert [split_log[s][0] for s in (1, 2, 3)] == pytest.approx([whole_log[s][0] for s in (1, 2, 3)], rel=1e-5)
    state = torch.load(whole / "resume.pt", weights_only=True)
    assert any(key.startswith("mrd.") for key in state["discriminators"])

"""Adapting a synthesizer to its reference (vc.adaptation): the reference becomes a training
example, a copy learns it, the shipped model is untouched, and the cloner uses the copy."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vc.adaptation import ReferenceAdaptation, labels_to_tokens, reference_example
from vc.audio import prepare_speech
from vc.cloning import VoiceCloner
from vc.data.phones import PHONE_INDEX
from vc.mel import MelSpectrogram
from vc.models.synthesizer import SIL, DurationSynthesizer
from vc.text import SYMBOL_INDEX
from vc.transcript_phones import TranscriptPhones

from test_transcript_guidance import SIX_SPOONS, KnownText

pytestmark = pytest.mark.usefixtures("one_thread")


def test_frame_labels_become_tokens_with_their_frame_counts():
    s, ih, k = PHONE_INDEX["s"], PHONE_INDEX["ih"], PHONE_INDEX["k"]
    tokens, lengths = labels_to_tokens(torch.tensor([0, 0, s, s, s, ih, k, k, 0]), SYMBOL_INDEX, SIL)
    assert tokens == [SIL, SYMBOL_INDEX["s"], SYMBOL_INDEX["ih"], SYMBOL_INDEX["k"], SIL]
    assert lengths == [2, 3, 1, 2, 1]


def _example(real_speech, synth, speaker_encoder):
    clip = prepare_speech(real_speech / "vctk" / "p225" / "p225_003.wav", synth.mel.sample_rate)
    mel = MelSpectrogram(synth.mel)(clip.to_tensor())
    labels = TranscriptPhones(KnownText(SIX_SPOONS)).labels(clip, mel.shape[-1], synth.mel.frame_rate).labels
    return reference_example(clip.samples, clip.sample_rate, mel, labels, speaker_encoder.embed(clip),
                             synth.mel.hop_length)


def test_adaptation_learns_the_reference_on_a_copy(real_speech, speaker_encoder):
    torch.manual_seed(0)
    synth = DurationSynthesizer.from_preset("tiny").eval()
    example = _example(real_speech, synth, speaker_encoder)
    assert example["durations"].sum() == example["mel"].shape[-1]
    assert SYMBOL_INDEX["b"] in example["tokens"][0].tolist()          # "Bob" from the transcript
    before = {k: v.clone() for k, v in synth.state_dict().items()}
    with torch.no_grad():
        loss_before = synth.loss(example)[1]["recon"]
    adapted = ReferenceAdaptation(steps=30, learning_rate=3e-3, interpolation=1.0).adapt(synth, [example])
    half = ReferenceAdaptation(steps=30, learning_rate=3e-3).adapt(synth, [example])
    name = "decoder.blocks.0.conv.weight"
    torch.testing.assert_close(half.state_dict()[name], (before[name] + adapted.state_dict()[name]) / 2)
    with torch.no_grad():
        loss_after = adapted.loss(example)[1]["recon"]
    assert loss_after < 0.8 * loss_before
    assert all(torch.equal(before[k], v) for k, v in synth.state_dict().items())   # untouched
    changed = {k for k, v in adapted.state_dict().items() if not torch.equal(before[k], v)}
    assert changed and all(k.split(".")[0] in ("decoder", "out", "postnet") for k in changed)
    assert not any(p.requires_grad for p in adapted.parameters()) and not adapted.training
    assert ReferenceAdaptation().adapt(synth, []) is synth                  # nothing labelled


def test_bad_adaptation_settings_are_refused():
    with pytest.raises(ValueError, match="steps"):
        ReferenceAdaptation(steps=0)
    with pytest.raises(ValueError, match="learning_rate"):
        ReferenceAdaptation(learning_rate=1.0)
    with pytest.raises(ValueError, match="interpolation"):
        ReferenceAdaptation(interpolation=0)
    with pytest.raises(ValueError, match="no module"):
        ReferenceAdaptation(modules=("decoderr",)).adapt(DurationSynthesizer.from_preset("tiny"), [{}])


def test_an_adapted_cloner_speaks_in_inference_mode_and_leaves_its_model_alone(real_speech, speaker_encoder):
    torch.manual_seed(0)
    synth = DurationSynthesizer.from_preset("tiny").eval()
    before = {k: v.clone() for k, v in synth.state_dict().items()}
    reference = real_speech / "vctk" / "p225" / "p225_003.wav"
    transcript = TranscriptPhones(KnownText(SIX_SPOONS))
    adapted = VoiceCloner(synth, speaker_encoder=speaker_encoder, transcript=transcript,
                          adaptation=ReferenceAdaptation(steps=5, learning_rate=3e-3))
    plain = VoiceCloner(synth, speaker_encoder=speaker_encoder)
    seen = []
    with torch.inference_mode():                    # as the web demo calls it
        a = adapted.clone("Six spoons.", reference, progress=lambda f, what="": seen.append((f, what)))
    b = plain.clone("Six spoons.", reference)
    assert a.mel.shape == b.mel.shape and not torch.allclose(a.mel, b.mel)
    # a new voice's adaptation moves the bar step by step (it is most of the first request's time)
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    steps = [what for _, what in seen if what.startswith("adapting to the reference: step")]
    assert steps[-1] == "adapting to the reference: step 5 of 5" and len(steps) == 5
    assert all(torch.equal(before[k], v) for k, v in synth.state_dict().items())
    with pytest.raises(ValueError, match="transcript"):
        VoiceCloner(synth, adaptation=ReferenceAdaptation())


def test_several_reference_clips_train_together_in_one_padded_batch(real_speech, speaker_encoder):
    from vc.adaptation import collate

    synth = DurationSynthesizer.from_preset("tiny").eval()
    long = _example(real_speech, synth, speaker_encoder)
    short = {k: v[:, :12] if k in ("tokens", "durations", "pitch") else v for k, v in long.items()}
    short["mel"] = long["mel"][..., :int(short["durations"].sum())]
    batch = collate([long, short])
    assert batch["tokens"].shape == (2, long["tokens"].shape[1])
    assert batch["durations"].sum(1).tolist() == [long["mel"].shape[-1], short["mel"].shape[-1]]
    assert torch.equal(batch["mel"][1, :, :short["mel"].shape[-1]], short["mel"][0])
    with torch.no_grad():                  # padding is masked: the pair's loss lies between the two
        losses = [synth.loss(b)[1]["recon"] for b in (long, short, batch)]
    assert min(losses[:2]) - 1e-4 <= losses[2] <= max(losses[:2]) + 1e-4


def test_the_phonetic_converter_learns_its_reference_on_a_copy_and_converts_with_it(real_speech, speaker_encoder):
    from vc.models.ppgvc import PhoneticVC
    from vc.pipeline import VoiceConverter

    torch.manual_seed(0)
    model = PhoneticVC.from_preset("tiny").eval()
    reference = prepare_speech(real_speech / "vctk" / "p225" / "p225_003.wav", model.mel.sample_rate)
    mel = MelSpectrogram(model.mel)(reference.to_tensor())
    transcript = TranscriptPhones(KnownText(SIX_SPOONS))
    labels = transcript.labels(reference, mel.shape[-1], model.mel.frame_rate).labels
    example = model.adaptation_example(mel, labels, torch.from_numpy(speaker_encoder.embed(reference)))
    known = torch.cat([c[:-2].argmax(0) for c in example["content"]])       # the known phones, segment by segment
    assert set(known.tolist()) == set(labels.clamp_min(0).tolist())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        loss_before = model.adaptation_loss([example]).item()
    adapted = ReferenceAdaptation(steps=30, learning_rate=3e-3, interpolation=1.0).adapt(model, [example])
    with torch.no_grad():
        assert adapted.adaptation_loss([example]).item() < 0.8 * loss_before
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())   # untouched
    changed = {k for k, v in adapted.state_dict().items() if not torch.equal(before[k], v)}
    assert changed and all(k.startswith("decoder.") for k in changed)      # the recogniser stays
    head = ReferenceAdaptation(steps=30, learning_rate=3e-3, interpolation=1.0,
                               modules=["decoder.out", "decoder.postnet"]).adapt(model, [example])
    changed = {k for k, v in head.state_dict().items() if not torch.equal(before[k], v)}
    assert changed and all(k.startswith(("decoder.out.", "decoder.postnet.")) for k in changed)
    with torch.no_grad():                  # the frozen part ran once, the head learnt on its output
        assert head.adaptation_loss([example]).item() < 0.9 * loss_before

    source = real_speech / "vctk" / "p226" / "p226_003.wav"
    plain = VoiceConverter(model, speaker_encoder=speaker_encoder, transcript=transcript)
    converting = VoiceConverter(model, speaker_encoder=speaker_encoder, transcript=transcript,
                                adaptation=ReferenceAdaptation(steps=5, learning_rate=3e-3))
    with torch.inference_mode():                    # as the web demo calls it
        a = converting.convert(source, reference)
    b = plain.convert(source, reference)
    assert a.samples.shape == b.samples.shape and not np.allclose(a.samples, b.samples)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_adapting_a_model_that_cannot_learn_from_its_reference_is_refused():
    from vc.models.vqvc import VQVC
    from vc.pipeline import VoiceConverter

    with pytest.raises(ValueError, match="cannot"):
        VoiceConverter(VQVC.from_preset("small"), adaptation=ReferenceAdaptation())
    with pytest.raises(ValueError, match="no module"):
        from vc.models.ppgvc import PhoneticVC
        VoiceConverter(PhoneticVC.from_preset("tiny"), adaptation=ReferenceAdaptation(modules=("postnet",)))


def test_a_voice_used_again_is_adapted_once(real_speech, speaker_encoder, monkeypatch):
    from vc.adaptation import AdaptedModels
    from vc.models.ppgvc import PhoneticVC
    from vc.pipeline import VoiceConverter

    built = []
    adapt = ReferenceAdaptation.adapt
    monkeypatch.setattr(ReferenceAdaptation, "adapt", lambda self, *a: built.append(1) or adapt(self, *a))
    torch.manual_seed(0)
    converter = VoiceConverter(PhoneticVC.from_preset("tiny").eval(), speaker_encoder=speaker_encoder,
                               transcript=TranscriptPhones(KnownText(SIX_SPOONS)),
                               adaptation=ReferenceAdaptation(steps=3, learning_rate=3e-3))
    source, voice = real_speech / "vctk" / "p226" / "p226_003.wav", real_speech / "vctk" / "p225" / "p225_003.wav"
    first, again = converter.convert(source, voice), converter.convert(source, voice)
    assert len(built) == 1 and np.array_equal(first.samples, again.samples)
    converter.convert(source, real_speech / "vctk" / "p225" / "p225_008.wav")   # another voice: adapted
    assert len(built) == 2

    kept = AdaptedModels(size=2)
    for key in "abca":
        kept.get(key, lambda: torch.nn.Linear(1, 1))
    assert len(kept) == 2 and kept.get("c", lambda: None) is not None        # 'b' was the oldest
    assert kept.get("b", lambda: "rebuilt") == "rebuilt"
    with pytest.raises(ValueError, match="size"):
        AdaptedModels(size=-1)

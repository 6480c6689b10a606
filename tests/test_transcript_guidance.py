"""Transcript guidance of the phonetic converter (Whisper transcript -> forced-aligned phones ->
the decoder) and per-phone mean matching to the reference: real clips, known answers, errors."""
from __future__ import annotations

import os

import pytest
import torch

from vc.audio import prepare_speech
from vc.data.phones import PHONE_INDEX, PHONES
from vc.models.ppgvc import PhoneticVC
from vc.phone_matching import PhoneMeanMatching
from vc.pipeline import VoiceConverter
from vc.transcript_phones import TranscriptPhones

pytestmark = pytest.mark.usefixtures("one_thread")

SIX_SPOONS = ("Six spoons of fresh snow peas, five thick slabs of blue cheese, and maybe a snack for "
              "her brother Bob.")


class KnownText:
    """A stand-in recogniser that hears what the clip is known to say."""

    name = "known-text"

    def __init__(self, text: str):
        self.text = text

    def transcribe(self, audio) -> str:
        return self.text


def _clip(real_speech, rate=22050):
    return prepare_speech(real_speech / "vctk" / "p225" / "p225_003.wav", rate, trim=False)


def _collapsed(labels: torch.Tensor) -> list[str]:
    out = []
    for i in labels.tolist():
        if PHONES[i] != "sil" and (not out or out[-1] != PHONES[i]):
            out.append(PHONES[i])
    return out


def test_labels_follow_the_transcript_of_a_real_clip(real_speech):
    clip = _clip(real_speech)
    frames = int(clip.duration * 86.13) + 1
    found = TranscriptPhones(KnownText(SIX_SPOONS)).labels(clip, frames, 86.13)
    assert found.text == SIX_SPOONS and found.labels.shape == (frames,)
    phones = _collapsed(found.labels)
    assert phones[:4] == ["s", "ih", "k", "s"] and phones[-3:] == ["b", "aa", "b"]
    speech = (found.labels != PHONE_INDEX["sil"]).float().mean().item()
    assert 0.4 < speech < 0.95


def test_nothing_heard_gives_no_labels(real_speech):
    assert TranscriptPhones(KnownText("  ...  ")).labels(_clip(real_speech), 100, 86.13) is None


def test_a_clip_is_transcribed_once(real_speech):
    class Counting(KnownText):
        calls = 0

        def transcribe(self, audio):
            Counting.calls += 1
            return super().transcribe(audio)

    guide = TranscriptPhones(Counting(SIX_SPOONS), cache_size=1)
    clip = _clip(real_speech)
    first = guide.labels(clip, 500, 86.13)
    assert guide.labels(clip, 500, 86.13) is first and Counting.calls == 1
    guide.labels(_clip(real_speech, 16000), 500, 86.13)       # another clip pushes it out
    guide.labels(clip, 500, 86.13)
    assert Counting.calls == 3


def test_whisper_transcript_guides_the_phones(real_speech):
    from vc.asr import whisper_available
    if not whisper_available("base"):
        message = "whisper-base weights missing; run `python -m eval fetch-whisper`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    found = TranscriptPhones("base", threads=1).labels(_clip(real_speech), 518, 86.13)
    assert "spoons" in found.text.lower() and "cheese" in found.text.lower()
    assert _collapsed(found.labels)[:4] == ["s", "ih", "k", "s"]


def test_known_phones_replace_the_recognisers_posteriors():
    torch.manual_seed(0)
    model = PhoneticVC.from_preset("tiny").eval()
    mel = torch.randn(1, 80, 12) - 5
    phones = torch.tensor([[-1, 3, 3, 5, -1, 0, 0, 7, 7, 7, -1, 2]])
    with torch.no_grad():
        plain = model.encode(mel)
        guided = model.encode(mel, phones=phones)
        out = model.convert(mel, None, torch.nn.functional.normalize(torch.randn(1, 256), dim=-1), phones=phones)
    known = phones[0] >= 0
    assert torch.equal(guided.posteriors[0, :, known].argmax(0), phones[0, known])
    assert torch.allclose(guided.posteriors[0, :, known].sum(0), torch.ones(int(known.sum())))
    assert torch.equal(guided.posteriors[0, :, ~known], plain.posteriors[0, :, ~known])
    assert torch.equal(guided.log_f0, plain.log_f0) and out.shape == mel.shape
    with pytest.raises(ValueError, match="do not match"):
        model.encode(mel, phones=phones[:, :5])


def test_guided_conversion_of_a_real_clip_uses_the_labels_in_every_chunk(real_speech, speaker_encoder):
    torch.manual_seed(0)
    model = PhoneticVC.from_preset("tiny").eval()
    reference = real_speech / "vctk" / "p226" / "p226_003.wav"
    guided = VoiceConverter(model, speaker_encoder=speaker_encoder,
                            transcript=TranscriptPhones(KnownText(SIX_SPOONS)))
    plain = VoiceConverter(model, speaker_encoder=speaker_encoder)
    source = real_speech / "vctk" / "p225" / "p225_003.wav"
    a = guided.convert(source, reference)
    b = plain.convert(source, reference)
    assert a.duration == pytest.approx(b.duration) and abs(a.samples).max() > 0
    assert not torch.allclose(torch.from_numpy(a.samples), torch.from_numpy(b.samples))
    # the chunked path hands each chunk its own frames' labels: the same as one chunk here
    src = prepare_speech(source, model.mel.sample_rate)
    mel = guided.mel(src.to_tensor())
    labels = guided.phones_of(src, mel.shape[-1])
    target = torch.nn.functional.normalize(torch.randn(256), dim=-1)
    with torch.no_grad():
        whole = model.convert(mel[None], None, target[None], phones=labels[None])[0]
        chunked = guided.convert_mel(mel, target, target, chunk_frames=mel.shape[-1], phones=labels)
    assert torch.allclose(whole, chunked, atol=1e-5)


def test_phone_mean_matching_known_answer():
    """Phone 5 is said in both: its output frames move by the reference's mean difference,
    shrunk towards the average shift by prior/(n + prior); a phone the reference lacks and
    silence move by the average shift; the frames keep their shape over time."""
    out = torch.zeros(2, 6)
    out[:, 2:4] = torch.tensor([[1.0, 3.0], [0.0, 0.0]])     # phone 5: mean (2, 0)
    labels = torch.tensor([0, 0, 5, 5, 9, 9])
    ref = torch.full((2, 40), 1.0)                              # phone 5 in the reference: 30 frames at 1
    ref_labels = torch.tensor([0] * 10 + [5] * 30)
    match = PhoneMeanMatching(prior_frames=10.0, match_spread=False, smooth_frames=1)
    shifted = match.refine(out, labels, [ref], [ref_labels])
    average = ref[:, 10:].mean(1) - out[:, 2:].mean(1)           # over speech frames on both sides
    own = torch.tensor([1.0, 1.0]) - torch.tensor([2.0, 0.0])
    expected5 = 0.75 * own + 0.25 * average
    assert torch.allclose(shifted[:, 2:4] - out[:, 2:4], expected5[:, None].expand(2, 2))
    assert torch.allclose(shifted[:, 4:] - out[:, 4:], average[:, None].expand(2, 2))
    assert torch.allclose(shifted[:, :2] - out[:, :2], average[:, None].expand(2, 2))
    assert shifted[0, 3] - shifted[0, 2] == pytest.approx(2.0)    # the shape over time is kept
    silent = match.refine(out, torch.zeros(6, dtype=torch.long), [ref], [ref_labels])
    assert torch.equal(silent, out)
    with pytest.raises(ValueError, match="labels"):
        match.refine(out, labels[:3], [ref], [ref_labels])
    # the spread: each band's deviation over speech scaled to the reference's (held to [1/2, 2])
    torch.manual_seed(0)
    flat, lively = torch.randn(2, 200) * 0.5, torch.randn(2, 300) * 1.5
    speech_a, speech_b = torch.ones(200, dtype=torch.long) * 5, torch.ones(300, dtype=torch.long) * 5
    spread = PhoneMeanMatching().refine(flat, speech_a, [lively], [speech_b])
    assert torch.allclose(spread.std(1), torch.minimum(lively.std(1), 2 * flat.std(1)), rtol=1e-4)
    # smoothed over 5 frames (the default), the shift ramps across a boundary instead of stepping
    long_labels = torch.tensor([5] * 20 + [9] * 20)
    long_out = torch.zeros(2, 40)
    step = PhoneMeanMatching(prior_frames=10.0, match_spread=False, smooth_frames=1)
    ramp = PhoneMeanMatching(prior_frames=10.0, match_spread=False)
    stepped = step.refine(long_out, long_labels, [ref], [ref_labels])
    ramped = ramp.refine(long_out, long_labels, [ref], [ref_labels])
    assert ramp.smooth_frames == 5
    assert torch.allclose(ramped[:, :15], stepped[:, :15]) and torch.allclose(ramped[:, 25:], stepped[:, 25:])
    assert torch.allclose(ramped[:, 19], stepped[:, 19] * 0.6 + stepped[:, 20] * 0.4)   # 3 of 5 frames before it
    with pytest.raises(ValueError, match="positive"):
        PhoneMeanMatching(prior_frames=0)
    with pytest.raises(ValueError, match="at least 1"):
        PhoneMeanMatching(max_spread_ratio=0.5)


def test_phone_matching_needs_a_phonetic_model():
    from vc.models.vqvc import VQVC
    with pytest.raises(ValueError, match="phonetic"):
        VoiceConverter(VQVC.from_preset("small"), phone_matching=PhoneMeanMatching())


def test_cloned_speech_is_matched_to_the_reference_phone_by_phone(real_speech, speaker_encoder):
    from vc.cloning import VoiceCloner, token_phones
    from vc.models.synthesizer import DurationSynthesizer
    from vc.text import SYMBOL_INDEX

    assert token_phones([SYMBOL_INDEX["<sil>"], SYMBOL_INDEX["s"], SYMBOL_INDEX["ih"], 0]).tolist() == \
        [0, PHONE_INDEX["s"], PHONE_INDEX["ih"], 0]
    torch.manual_seed(0)
    synth = DurationSynthesizer.from_preset("tiny")
    reference = real_speech / "vctk" / "p225" / "p225_003.wav"
    seen = []

    class Spy(PhoneMeanMatching):
        def refine(self, converted, labels, reference_mels, reference_labels):
            seen.append((labels, reference_labels))
            return super().refine(converted, labels, reference_mels, reference_labels)

    matched = VoiceCloner(synth, speaker_encoder=speaker_encoder, phone_matching=Spy(),
                          transcript=TranscriptPhones(KnownText(SIX_SPOONS)))
    plain = VoiceCloner(synth, speaker_encoder=speaker_encoder)
    a = matched.clone("Six spoons. Five slabs.", reference)
    b = plain.clone("Six spoons. Five slabs.", reference)
    assert a.mel.shape == b.mel.shape and not torch.allclose(a.mel, b.mel)
    labels, reference_labels = seen[0]
    assert labels.shape == (a.mel.shape[-1],) and PHONE_INDEX["s"] in labels.tolist()
    assert PHONE_INDEX["b"] in reference_labels[0].tolist()          # "Bob" from the transcript
    with pytest.raises(ValueError, match="transcript"):
        VoiceCloner(synth, phone_matching=PhoneMeanMatching())


def test_cli_converts_a_real_clip_with_the_shipped_phonetic_model(real_speech, tmp_path):
    """`python -m vc convert` on the shipped default, with and without transcript guidance, with
    the phones of Whisper's encoder, and adapted to the reference (from the model's own phones
    there)."""
    from vc.__main__ import main
    from vc.asr import whisper_available
    from vc.audio import load_audio

    source = real_speech / "vctk" / "p225" / "p225_003.wav"
    reference = real_speech / "vctk" / "p226" / "p226_003.wav"
    runs = [["--transcript", "none", "--no-phone-matching"],
            ["--transcript", "none", "--no-phone-matching", "--adapt-steps", "3"]]
    if whisper_available("base"):
        runs += [[], ["--transcript", "encoder"]]  # the transcript's phones; the phone head's
    for i, extra in enumerate(runs):
        out = tmp_path / f"out{i}.wav"
        assert main(["convert", "--model", "ppgvc-small", "--source", str(source), "--reference", str(reference),
                     "--out", str(out), "--vocoder", "hifigan-fast", *extra]) == 0
        audio = load_audio(out)
        assert 4.0 < audio.duration < 6.5 and abs(audio.samples).max() > 0.01


def test_missing_whisper_weights_warn_and_convert_with_the_models_own_phones(real_speech, speaker_encoder,
                                                                            monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    model = PhoneticVC.from_preset("tiny").eval()
    converter = VoiceConverter(model, speaker_encoder=speaker_encoder, phone_matching=PhoneMeanMatching(),
                               transcript=TranscriptPhones("someone/no-such-whisper"))
    source = real_speech / "vctk" / "p225" / "p225_003.wav"
    with pytest.warns(UserWarning, match="without transcript guidance"):
        audio = converter.convert(source, real_speech / "vctk" / "p226" / "p226_003.wav")
    assert audio.duration > 4.0 and abs(audio.samples).max() > 0


def test_transcripts_are_cached_by_clip_until_forgotten(real_speech):
    heard = []

    class Counting(KnownText):
        def transcribe(self, audio) -> str:
            heard.append(1)
            return self.text

    from vc.audio import prepare_speech
    clip = prepare_speech(real_speech / "vctk" / "p225" / "p225_003.wav", 16000)
    transcript = TranscriptPhones(Counting(SIX_SPOONS))
    first = transcript.labels(clip, 300, 62.5)
    assert transcript.labels(clip, 300, 62.5) is first and len(heard) == 1
    transcript.forget(clip)
    assert torch.equal(transcript.labels(clip, 300, 62.5).labels, first.labels) and len(heard) == 2

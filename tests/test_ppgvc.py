"""The phonetic family: one phone set for every labeller, the forced aligner on real speech, frame
targets in training batches, and the PPG model learning phones from an aligned real clip."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import fit
from vc.data.align import ForcedAligner, align_corpus, espeak_pronunciation, transcript_words
from vc.data.manifest import read_manifest
from vc.data.phones import PHONE_INDEX, PHONES, PhoneSetError, frame_labels, to_arpabet
from vc.data.utterance import Segment, Utterance
from vc.models.ppgvc import PhoneticVC, utterance_normalized, warp_frequency

pytestmark = pytest.mark.usefixtures("one_thread")

SIX_SPOONS = ("Six spoons of fresh snow peas, five thick slabs of blue cheese, and maybe a snack for "
              "her brother Bob.")


def test_every_labeller_maps_to_one_phone_set():
    assert len(PHONES) == 40 and PHONES[0] == "sil"
    assert to_arpabet("ax") == "ah" and to_arpabet("pau") == "sil"          # flite / festival
    assert to_arpabet("AH0", "cmu") == "ah" and to_arpabet("+NSN+", "cmu") == "sil"  # pocketsphinx
    assert to_arpabet("SIL", "cmu") == "sil"
    for espeak, arpabet in {"@": "ah", "tS": "ch", "aI": "ay", "3:": "er", "i@3": "iy", "t#": "t", "t[": "t",
                            "'eI": "ey", "D": "dh", "n": "n"}.items():
        assert to_arpabet(espeak, "espeak") == arpabet, espeak
    assert to_arpabet(";", "espeak") is None
    with pytest.raises(PhoneSetError):
        to_arpabet("qq")
    with pytest.raises(PhoneSetError):
        to_arpabet("a", "klingon")


def test_frame_labels_take_the_segment_under_each_frame_centre():
    segments = [Segment(0.0, 0.1, "pau"), Segment(0.1, 0.25, "s"), Segment(0.25, 0.3, "ih")]
    labels = frame_labels(segments, frames=8, frame_rate=20.0)  # centres at 0, .05, .10, ...
    names = [PHONES[i] for i in labels]
    assert names == ["sil", "sil", "s", "s", "s", "ih", "sil", "sil"]
    # a trimmed clip: 0.1 s cut from the start shifts every frame
    shifted = [PHONES[i] for i in frame_labels(segments, frames=4, frame_rate=20.0, offset=0.1)]
    assert shifted == ["s", "s", "s", "ih"]


def test_espeak_pronounces_words_cmudict_lacks():
    assert espeak_pronunciation("zyxqwerty")[:2] == ["z", "ih"]
    assert transcript_words("Mr. O'Neil's well-known dog, 1990!") == ["mr", "o'neil's", "well", "known", "dog", "1990"]


def test_aligner_places_the_words_of_a_real_clip(real_speech):
    clip = real_speech / "vctk" / "p225" / "p225_003.wav"
    segments = ForcedAligner().align(clip, SIX_SPOONS)
    phones = [s.phone for s in segments if s.phone != "sil"]
    assert phones[:4] == ["s", "ih", "k", "s"]                      # "six"
    assert phones[-3:] == ["b", "aa", "b"]                          # "Bob"
    assert all(a.offset <= b.onset + 1e-6 for a, b in zip(segments, segments[1:]))
    duration = 6.01
    assert segments[-1].offset == pytest.approx(duration, abs=0.05)
    speech = sum(s.offset - s.onset for s in segments if s.phone != "sil")
    assert 3.0 < speech < duration


def test_align_corpus_writes_a_resumable_manifest(real_speech, tmp_path):
    clips = sorted((real_speech / "vctk" / "p226").glob("*.wav"))[:2]
    texts = dict(line.split("\t", 1) for line in
                 (real_speech / "vctk" / "transcripts.tsv").read_text().splitlines()[1:])
    utterances = [Utterance(c, "p226", texts[c.stem.split("_")[1]].strip(), None, "vctk") for c in clips]
    utterances.append(Utterance(clips[0].with_name("none.wav"), "p226", None, None, "vctk"))
    out = tmp_path / "aligned.jsonl"
    assert align_corpus(utterances, out, progress=False) == {"aligned": 2, "reused": 0, "failed": 0,
                                                              "untranscribed": 1}
    assert align_corpus(utterances, out, progress=False)["reused"] == 2
    rows = read_manifest(out)
    assert len(rows) == 2 and rows[0].extra["phoneset"] == "arpabet" and rows[0].alignment
    assert rows[0].path.resolve() == clips[0].resolve()


def test_warping_moves_energy_along_the_band_axis():
    mel = torch.zeros(1, 80, 3)
    mel[0, 40] = 1.0
    up = warp_frequency(mel, torch.tensor([1.25]))
    assert int(up[0, :, 0].argmax()) == 50  # band m reads band m / 1.25
    assert torch.allclose(warp_frequency(mel, torch.tensor([1.0])), mel)
    normal = utterance_normalized(torch.randn(2, 80, 50) * 3 + 7)
    assert torch.allclose(normal.mean(-1), torch.zeros(2, 80), atol=1e-5)


def test_model_learns_phones_of_an_aligned_real_clip(real_speech):
    """The tiny preset overfits one aligned clip: phone accuracy and reconstruction improve."""
    from vc.audio import prepare_speech
    from vc.mel import MelSpectrogram
    from vc.pitch import f0_contour, normalized_log_f0
    from vc.speaker import SpeakerEncoder

    clip = real_speech / "vctk" / "p225" / "p225_003.wav"
    segments = ForcedAligner().align(clip, SIX_SPOONS)
    torch.manual_seed(0)
    model = PhoneticVC.from_preset("tiny", warp=0.0)
    audio = prepare_speech(clip, model.mel.sample_rate, trim=False)
    mel = MelSpectrogram(model.mel)(audio.to_tensor())
    frames = mel.shape[-1]
    phones = torch.tensor(frame_labels(segments, frames, model.mel.frame_rate))
    lf0, voiced = normalized_log_f0(f0_contour(audio.samples, audio.sample_rate, model.mel.hop_length)[:frames])
    assert (phones != PHONE_INDEX["sil"]).float().mean() > 0.5 and voiced.mean() > 0.3
    batch = {"mel": mel[None], "phones": phones[None], "lf0": torch.from_numpy(lf0)[None],
             "voiced": torch.from_numpy(voiced)[None],
             "embedding": torch.from_numpy(SpeakerEncoder.pretrained().embed(audio))[None],
             "speaker": torch.zeros(1, dtype=torch.long)}
    history = fit(model, batch, steps=150, lr=1e-2)
    first, last = history[0][1], history[-1][1]
    assert last["phone_acc"] > 0.6 > first["phone_acc"]
    assert last["recon"] < 0.7 * first["recon"] and last["pitch"] < first["pitch"]

    model.eval()
    with torch.no_grad():
        content = model.content_frames(mel)
        assert content.features.shape == (frames, len(PHONES))
        assert torch.allclose(content.features.sum(-1), torch.ones(frames), atol=1e-4)
        assert (content.codes == phones).float().mean() > 0.6
        speaker = model.speaker([mel], batch["embedding"][0])
        out = model.convert(mel[None], speaker[None], speaker[None])
    assert out.shape == mel[None].shape and torch.isfinite(out).all()


def test_bad_settings_and_inputs():
    with pytest.raises(ValueError, match="warp"):
        PhoneticVC(warp=0.7)
    with pytest.raises(ValueError, match="n_phones"):
        PhoneticVC(n_phones=12)
    model = PhoneticVC.from_preset("tiny")
    with pytest.raises(ValueError, match="GE2E"):
        model.speaker([], None)
    with pytest.raises(ValueError, match="mels"):
        model.encode(torch.zeros(1, 40, 10))
    assert np.isfinite(model.loss({"mel": torch.randn(2, 80, 16), "phones": torch.full((2, 16), -1),
                                   "lf0": torch.zeros(2, 16), "voiced": torch.zeros(2, 16),
                                   "embedding": torch.randn(2, 256)})[0].item())


def test_knn_matcher_known_answer():
    """Two reference 'phones' (directions) with known spectra: each query frame takes the mean
    of the spectra of its k nearest reference frames."""
    from vc.knn import knn_match

    keys = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.2, 1.0]])
    values = torch.tensor([[10.0], [20.0], [-1.0], [-3.0], [-5.0]])
    query = torch.tensor([[2.0, 0.1], [0.05, 3.0]])
    matched, similarity = knn_match(query, keys, values, k=2)
    assert matched[:, 0].tolist() == pytest.approx([15.0, -2.0])     # scale does not matter: cosine
    assert (similarity > 0.98).all()
    one, _ = knn_match(query, keys, values, k=1)
    assert one[:, 0].tolist() == [10.0, -1.0]
    many, _ = knn_match(query, keys, values, k=99)                   # k clamps to the frames there are
    assert many[:, 0].tolist() == pytest.approx([4.2, 4.2])
    chunked, _ = knn_match(query.repeat(5, 1), keys, values, k=2, chunk=3)
    assert torch.allclose(chunked, matched.repeat(5, 1))
    with pytest.raises(ValueError, match="at least one"):
        knn_match(query, keys[:0], values[:0])


def test_knn_refinement_borrows_reference_frames():
    """blend=1, k=1: every output frame is one of the reference's frames; blend=0: the model's;
    a model that down-samples its content is refused."""
    from vc.models.vqvae import VQVAE
    from vc.pipeline import KnnRefinement

    torch.manual_seed(0)
    model = PhoneticVC.from_preset("tiny").eval()
    source, converted = torch.randn(80, 30) - 5, torch.randn(80, 30) - 5
    references = [torch.randn(80, 20) - 5, torch.randn(80, 15) - 5]
    with torch.no_grad():
        pure = KnnRefinement(k=1, blend=1.0, min_similarity=-1.0).refine(model, source, converted, references)
        kept = KnnRefinement(k=1, blend=0.0).refine(model, source, converted, references)
    frames = torch.cat(references, dim=1).T
    assert all(any(torch.allclose(column, frame) for frame in frames) for column in pure.T)
    assert torch.equal(kept, converted)
    with pytest.raises(ValueError, match="down-samples"):
        KnnRefinement().check(VQVAE.from_preset("small"))
    with pytest.raises(ValueError, match="blend"):
        KnnRefinement(blend=2.0).check(model)

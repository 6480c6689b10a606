"""ABX error and bitrate (ZeroSpeech metrics) on inputs whose answers are known."""
from __future__ import annotations

import math

import numpy as np
import pytest

from eval.abx import (AbxItem, abx_error, dtw_average_batch, dtw_distance, frame_distances,
                      item_frames, items_from_alignments, mfcc_features, read_item_file,
                      write_item_file)
from eval.bitrate import bitrate, unit_entropy

RATE = 100.0  # frames per second of the synthetic features
PHONES = ("a", "b", "c", "d")
CONTEXTS = (("x", "y"), ("y", "x"))
SPEAKERS = ("s1", "s2", "s3")


def synthetic_set(frames_of, tokens: int = 4, lengths=(3, 7), seed: int = 0):
    """One utterance per item: context phone, item phone, context phone (3 frames each
    side), every (context, speaker, phone) `tokens` times. frames_of(phone, speaker, n, rng)
    -> (n, dim). Returns items (built from the alignments), features, frame rate."""
    rng = np.random.default_rng(seed)
    alignments, speakers, features = {}, {}, {}
    for prev, nxt in CONTEXTS:
        for spk in SPEAKERS:
            for ph in PHONES:
                for t in range(tokens):
                    utt = f"{spk}-{prev}{ph}{nxt}-{t}"
                    n = int(rng.integers(lengths[0], lengths[1] + 1))
                    alignments[utt] = [(0.0, 0.03, prev), (0.03, 0.03 + n / RATE, ph),
                                       (0.03 + n / RATE, 0.06 + n / RATE, nxt)]
                    speakers[utt] = spk
                    features[utt] = np.concatenate([frames_of(prev, spk, 3, rng),
                                                    frames_of(ph, spk, n, rng),
                                                    frames_of(nxt, spk, 3, rng)])
    return items_from_alignments(alignments, speakers), features, RATE


def unit(deg: float) -> np.ndarray:
    return np.array([math.cos(math.radians(deg)), math.sin(math.radians(deg))])


def one_frame_set(spec: dict[tuple[str, str, str], list[float]]):
    """Items of one 2-D unit frame each: (context, speaker, phone) -> angles in degrees, so
    that the angular distance of two frames is |angle difference| / 180.

    Each item spans [0, 0.02] s of a one-frame utterance: Libri-light's slice [0, 1) and
    the inclusive one (frames 0 and 1, cut at the utterance's end) both give that frame."""
    items, features = [], {}
    for (ctx, spk, ph), angles in spec.items():
        for k, deg in enumerate(angles):
            utt = f"{ctx}-{spk}-{ph}-{k}"
            features[utt] = unit(deg)[None]
            items.append(AbxItem(utt, 0.0, 0.02, ph, ctx, ctx, spk))
    return items, features


# ---------------------------------------------------------------- distances

def test_angular_and_kl_frame_distances():
    e1, e2 = np.array([[1.0, 0.0]]), np.array([[0.0, 2.0]])
    assert frame_distances(e1, e1)[0, 0] == pytest.approx(0.0, abs=1e-7)
    assert frame_distances(e1, -3 * e1)[0, 0] == pytest.approx(1.0)
    assert frame_distances(e1, e2)[0, 0] == pytest.approx(0.5)
    assert frame_distances(np.zeros((1, 2)), e1)[0, 0] == 1.0  # null frame: farthest
    assert frame_distances(np.zeros((1, 2)), np.zeros((1, 2)))[0, 0] == 0.0
    assert frame_distances(np.ones((3, 4)), np.ones((5, 4))).shape == (3, 5)
    p = np.array([[0.2, 0.3, 0.5], [0.0, 0.0, 1.0]])
    assert np.allclose(np.diag(frame_distances(p, p, "kl")), 0.0, atol=1e-9)
    q, r = np.array([[0.5, 0.5]]), np.array([[0.9, 0.1]])
    expected = 0.5 * (np.sum(q * np.log(q / r)) + np.sum(r * np.log(r / q)))
    assert frame_distances(q, r, "kl")[0, 0] == pytest.approx(expected, rel=1e-4)
    with pytest.raises(ValueError):
        frame_distances(q, -r, "kl")
    with pytest.raises(ValueError):
        frame_distances(q, r, "euclid")


def test_dtw_average_is_zero_for_a_sequence_and_its_time_stretch():
    a = np.random.default_rng(0).normal(size=(6, 5))
    assert dtw_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert dtw_distance(a, np.repeat(a, 2, axis=0)) == pytest.approx(0.0, abs=1e-6)
    assert dtw_distance(np.repeat(a, 3, axis=0), a) == pytest.approx(0.0, abs=1e-6)
    p = np.random.default_rng(1).dirichlet(np.ones(4), size=5)
    assert dtw_distance(p, np.repeat(p, 2, axis=0), "kl") == pytest.approx(0.0, abs=1e-9)


def test_dtw_average_known_values_and_batch_padding():
    e1, e2 = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    assert dtw_distance(e1[None], e2[None]) == pytest.approx(0.5)
    # total 0.5 on the diagonal (length 2) or via (1, 0) (length 3): ties take the diagonal
    assert dtw_distance(np.stack([e1, e1]), np.stack([e1, e2])) == pytest.approx(0.25)
    rng = np.random.default_rng(2)
    seqs = [(rng.normal(size=(n, 3)), rng.normal(size=(m, 3))) for n, m in
            [(1, 4), (5, 2), (3, 3), (6, 1)]]
    dist = np.full((4, 6, 4), 9.0)  # padding must not leak into the real blocks
    for k, (a, b) in enumerate(seqs):
        dist[k, :len(a), :len(b)] = frame_distances(a, b)
    batch = dtw_average_batch(dist, np.array([len(a) for a, _ in seqs]),
                              np.array([len(b) for _, b in seqs]))
    assert batch == pytest.approx([dtw_distance(a, b) for a, b in seqs])


# ---------------------------------------------------------------- items

def test_items_skip_utterance_edges_and_silences():
    alignments = {
        "u1": [(0.0, 0.1, "sil"), (0.1, 0.2, "a"), (0.2, 0.3, "b"), (0.3, 0.35, "sp"),
               (0.35, 0.5, "c"), (0.5, 0.6, "d"), (0.6, 0.7, "e"), (0.7, 0.8, "")],
        "u2": [(0.0, 0.1, "a"), (0.1, 0.25, "b"), (0.25, 0.3, "c")],
    }
    items = items_from_alignments(alignments, {"u1": "s1", "u2": "s2"})
    assert items == [
        AbxItem("u1", 0.1, 0.2, "a", "SIL", "b", "s1"),
        AbxItem("u1", 0.2, 0.3, "b", "a", "SIL", "s1"),
        AbxItem("u1", 0.35, 0.5, "c", "SIL", "d", "s1"),
        AbxItem("u1", 0.5, 0.6, "d", "c", "e", "s1"),
        AbxItem("u1", 0.6, 0.7, "e", "d", "SIL", "s1"),
        AbxItem("u2", 0.1, 0.25, "b", "a", "c", "s2"),
    ]
    strict = items_from_alignments(alignments, {"u1": "s1", "u2": "s2"}, silence_context=None)
    assert [(it.file, it.phone) for it in strict] == [("u1", "d"), ("u2", "b")]
    custom = items_from_alignments(alignments, {"u1": "s1", "u2": "s2"}, silences={"b"})
    assert "b" not in {it.phone for it in custom}


def test_item_file_round_trips(tmp_path):
    items = [AbxItem("6295-244435-0001", 0.1, 0.2334567891, "AH", "SIL", "N", "6295"),
             AbxItem("u2", 1.05, 1.3, "b", "a", "c", "spk2")]
    path = tmp_path / "dev.item"
    write_item_file(path, items)
    assert path.read_text().splitlines()[0] == \
        "#file onset offset #phone prev-phone next-phone speaker"
    assert read_item_file(path) == items
    with pytest.raises(ValueError):
        write_item_file(path, [AbxItem("u 1", 0.0, 0.1, "a", "b", "c", "s")])


def libri_light_slice(onset: float, offset: float, step_feature: float, n_frames: int):
    """Libri-light's item slice, transcribed from zrc_abx2's ABXFeatureLoader
    ._start_end_indices and its empty-item test: (start, end) or None when skipped."""
    index_start = max(0, int(math.ceil(step_feature * onset - 0.5)))
    index_end = int(min(n_frames, int(math.floor(step_feature * offset - 0.5))))
    if index_start >= n_frames or index_end <= index_start:
        return None
    return index_start, index_end


def test_item_frames_default_is_libri_light_slice():
    feats = np.arange(20.0)[:, None]  # frame i centred at (i + 0.5) / 100 s

    def frames(*args, **kw):
        return item_frames(feats, *args, **kw)[:, 0].tolist()

    # centres 0.035, 0.045, 0.055 lie in [0.03, 0.06]: Libri-light drops the last one
    assert frames(0.03, 0.06, 100.0) == [3, 4]
    assert frames(0.03, 0.04, 100.0) == []  # a one-frame (10 ms) phone has no frame left
    assert frames(0.03, 0.05, 100.0) == [3]
    assert frames(0.03, 0.06, 100.0, time_offset=0.01) == [2, 3]
    assert frames(0.031, 0.034, 100.0) == []
    assert frames(0.18, 0.5, 100.0) == [18, 19]  # cut at the utterance's end
    # a centre exactly on an edge falls as the float product does: 0.035 * 100 - 0.5 is
    # 3.0000000000000004, so frame 3 (centred at 0.035) is out, as in Libri-light
    assert frames(0.035, 0.065, 100.0) == [4, 5]
    # the same slice as Libri-light's code on grid-aligned and random times, several rates
    rng = np.random.default_rng(5)
    times = [k * 0.005 for k in range(45)] + rng.uniform(0, 0.22, 200).round(4).tolist()
    for rate in (100.0, 50.0, 1 / 0.02, 1 / 0.01):
        for onset, offset in zip(times, times[1:] + times[:1]):
            onset, offset = min(onset, offset), max(onset, offset)
            ref = libri_light_slice(onset, offset, rate, len(feats))
            got = frames(onset, offset, rate)
            assert got == (list(range(*ref)) if ref else []), (rate, onset, offset)


def test_item_frames_inclusive_take_every_frame_centred_inside():
    feats = np.arange(20.0)[:, None]

    def frames(*args, **kw):
        return item_frames(feats, *args, frame_selection="inclusive", **kw)[:, 0].tolist()

    assert frames(0.03, 0.06, 100.0) == [3, 4, 5]
    assert frames(0.03, 0.04, 100.0) == [3]
    assert frames(0.035, 0.065, 100.0) == [3, 4, 5, 6]  # centres on both ends are in
    assert frames(0.03, 0.06, 100.0, time_offset=0.01) == [2, 3, 4]
    assert frames(0.031, 0.034, 100.0) == []
    assert frames(0.18, 0.5, 100.0) == [18, 19]
    with pytest.raises(ValueError):
        item_frames(feats, 0.03, 0.06, 100.0, frame_selection="centre")


# ---------------------------------------------------------------- ABX

def test_abx_hand_computed_within_speaker():
    # One speaker, phones p and q, contexts c1..c3; distances are angle differences / 180.
    items, feats = one_frame_set({
        ("c1", "s", "p"): [0, 10], ("c1", "s", "q"): [90, 100],  # (p,q) 0, (q,p) 0
        # (p,q): X=0: A=100 loses to both B, A=10 wins; X=100: A=0 and A=10 lose to both;
        # X=10: A=0 wins, A=100 loses to both -> 8 of 12. (q,p): 0 of 6.
        ("c2", "s", "p"): [0, 100, 10], ("c2", "s", "q"): [50, 60],
        # (p,q): X=20: d(A=0)=d(B=0) tie 0.5; X=0: d(A=20) > d(B=0) 1 -> 0.75; no (q,p) cell
        ("c3", "s", "p"): [0, 20], ("c3", "s", "q"): [0],
    })
    out = abx_error(items, feats, RATE, mode="within")
    assert out["n_cells"] == 5 and out["n_phone_pairs"] == 2 and out["n_items"] == 12
    # contexts first: (p,q) = (0 + 8/12 + 0.75) / 3, (q,p) = (0 + 0) / 2; then the pairs
    assert out["by_phone_pair"][("p", "q")] == pytest.approx(17 / 36)
    assert out["by_phone_pair"][("q", "p")] == 0.0
    assert out["error"] == pytest.approx(17 / 72)  # pooling all triples would give 9.5/28
    # within speaker the across-speaker averaging option changes nothing, and each item's
    # single frame is selected either way
    for options in ({"across_averaging": "speaker-pairs"}, {"frame_selection": "inclusive"}):
        assert abx_error(items, feats, RATE, mode="within", **options) == out


def test_abx_hand_computed_across_speaker():
    items, feats = one_frame_set({("c", "s1", "p"): [0], ("c", "s1", "q"): [30],
                                  ("c", "s2", "p"): [40], ("c", "s2", "q"): [100],
                                  ("d", "s1", "p"): [0], ("d", "s1", "q"): [90],
                                  ("d", "s3", "p"): [10, 60]})
    # cells (context, speaker_AB -> speaker_X, A phone, B phone), A, B, X the angles:
    # (c, s1->s2, p,q): d(0,40) > d(30,40): 1;   (c, s1->s2, q,p): d(30,100) < d(0,100): 0;
    # (c, s2->s1, p,q): d(40,0) < d(100,0): 0;   (c, s2->s1, q,p): d(100,30) > d(40,30): 1;
    # (d, s1->s3, p,q): X=10: d(0,10) < d(90,10): 0, X=60: d(0,60) > d(90,60): 1 -> 0.5.
    # s3 says only p in d: no s3 -> s1 cell, and no (d, s1->s3, q,p) cell (no q from s3).
    out = abx_error(items, feats, RATE, mode="across")
    assert out["n_cells"] == 5 and out["n_phone_pairs"] == 2
    assert out["by_cell"][("d",) * 2, ("s1", "s3"), "p", "q"] == 0.5
    # Libri-light: (p,q) over (context, X) per speaker_AB: s1 (1 + 0.5) / 2, s2 0 -> 0.375;
    # (q,p): s1 0, s2 1 -> 0.5; then the pairs
    assert out["by_phone_pair"] == {("p", "q"): 0.375, ("q", "p"): 0.5}
    assert out["error"] == 7 / 16
    # speaker pairs weigh the same: (p,q) over (s1,s2) 1, (s1,s3) 0.5, (s2,s1) 0 -> 0.5
    pairs = abx_error(items, feats, RATE, mode="across", across_averaging="speaker-pairs")
    assert pairs["by_cell"] == out["by_cell"]
    assert pairs["by_phone_pair"] == {("p", "q"): 0.5, ("q", "p"): 0.5}
    assert pairs["error"] == 0.5
    with pytest.raises(ValueError):
        abx_error(items, feats, RATE, mode="across", across_averaging="contexts")
    with pytest.raises(ValueError):  # at most one token per speaker and phone pair: no X != A
        abx_error(items, feats, RATE, mode="within")


def test_abx_across_averagings_agree_when_speakers_share_contexts():
    items, feats, rate = synthetic_set(lambda ph, spk, n, rng: rng.normal(size=(n, 8)),
                                       tokens=2)
    default = abx_error(items, feats, rate, mode="across")
    pairs = abx_error(items, feats, rate, mode="across", across_averaging="speaker-pairs")
    assert default["by_cell"] == pairs["by_cell"]
    assert default["error"] == pytest.approx(pairs["error"], abs=1e-12)


def test_abx_frame_selections_differ_by_the_last_frame():
    # 10 ms aligned items: Libri-light's frames are the inclusive ones of the item ending
    # 10 ms earlier; one-frame items have none and are skipped by default
    items, feats, rate = synthetic_set(lambda ph, spk, n, rng: rng.normal(size=(n, 8)),
                                       lengths=(1, 5), seed=2)
    shorter = [it._replace(offset=it.offset - 1 / rate) for it in items]
    for mode in ("within", "across"):
        default = abx_error(items, feats, rate, mode=mode)
        inclusive = abx_error(shorter, feats, rate, mode=mode, frame_selection="inclusive")
        assert default == inclusive
        one_frame = sum(round((it.offset - it.onset) * rate) == 1 for it in items)
        assert 0 < one_frame == default["n_items_skipped"]
        full = abx_error(items, feats, rate, mode=mode, frame_selection="inclusive")
        assert full["n_items_skipped"] == 0 and full["error"] != default["error"]


def test_abx_is_near_zero_when_phones_are_well_separated():
    means = {ph: np.random.default_rng(100 + k).normal(size=16)
             for k, ph in enumerate(PHONES + ("x", "y"))}
    items, feats, rate = synthetic_set(
        lambda ph, spk, n, rng: means[ph] + 0.1 * rng.normal(size=(n, 16)))
    for mode in ("within", "across"):
        out = abx_error(items, feats, rate, mode=mode)
        assert out["error"] < 0.01, (mode, out["error"])
        assert out["n_phone_pairs"] == 12 and out["n_items"] == 96
    assert abx_error(items, feats, rate, mode="within")["n_cells"] == 2 * 3 * 12
    assert abx_error(items, feats, rate, mode="across")["n_cells"] == 2 * 3 * 2 * 12
    # posteriorgrams that put their mass on the phone: symmetric KL separates them too
    post = {u: np.exp(5 * f) / np.exp(5 * f).sum(1, keepdims=True) for u, f in feats.items()}
    assert abx_error(items, post, rate, distance="kl")["error"] < 0.01


def test_abx_is_chance_when_features_are_noise():
    items, feats, rate = synthetic_set(lambda ph, spk, n, rng: rng.normal(size=(n, 16)))
    for mode in ("within", "across"):
        assert abs(abx_error(items, feats, rate, mode=mode)["error"] - 0.5) < 0.08, mode


def test_abx_is_chance_when_features_encode_only_the_speaker():
    # Given X, A and B are exchangeable (same speaker, no phone information): expected 0.5.
    # Without noise every frame of a speaker is the same vector: every triple ties, exactly 0.5.
    voices = {s: np.random.default_rng(200 + k).normal(size=16) for k, s in enumerate(SPEAKERS)}
    items, feats, rate = synthetic_set(lambda ph, spk, n, rng: np.tile(voices[spk], (n, 1)),
                                       lengths=(4, 4))
    for mode in ("within", "across"):
        assert abx_error(items, feats, rate, mode=mode)["error"] == 0.5, mode
    items, feats, rate = synthetic_set(
        lambda ph, spk, n, rng: voices[spk] + 0.3 * rng.normal(size=(n, 16)), seed=1)
    for mode in ("within", "across"):
        assert abs(abx_error(items, feats, rate, mode=mode)["error"] - 0.5) < 0.08, mode


def test_abx_sampling_limits_and_skipped_items():
    items, feats, rate = synthetic_set(lambda ph, spk, n, rng: rng.normal(size=(n, 8)))
    full = abx_error(items, feats, rate, mode="across")
    small = abx_error(items, feats, rate, mode="across", max_group=2, max_x_speakers=1, seed=3)
    assert small["n_cells"] == full["n_cells"] // 2  # one X speaker of two
    assert small == abx_error(items, feats, rate, mode="across", max_group=2,
                              max_x_speakers=1, seed=3)  # repeatable
    late = [it._replace(onset=it.onset + 5.0, offset=it.offset + 5.0) for it in items[:4]]
    out = abx_error(late + items, feats, rate)
    assert out["n_items_skipped"] == 4 and out["n_items"] == len(items)
    with pytest.raises(ValueError):
        abx_error(items, feats, rate, mode="sideways")


def test_mfcc_baseline_features_and_abx_on_tones():
    sr = 16000
    feats, rate = mfcc_features({"u": np.zeros(sr), "v": np.ones(sr // 2 + 7)}, sr)
    assert rate == 100.0 and feats["u"].shape == (100, 13) and feats["v"].shape == (51, 13)
    assert mfcc_features({"u": np.zeros(800)}, sr, deltas=True)[0]["u"].shape == (5, 39)
    # phones as tones of their own pitch, speakers as loudness: MFCCs tell phones apart
    pitch = {"a": 300, "b": 700, "c": 1200, "d": 2000, "x": 450, "y": 3000}
    gain = {"s1": 0.2, "s2": 0.5, "s3": 1.0}
    audio, alignments, speakers = {}, {}, {}
    rng = np.random.default_rng(4)
    for prev, nxt in CONTEXTS:
        for spk in SPEAKERS:
            for ph in PHONES:
                for t in range(2):
                    utt = f"{spk}{prev}{ph}{nxt}{t}"
                    n = int(rng.integers(5, 9)) * 160  # 5..8 frames
                    parts = [np.arange(m) / sr * pitch[q] for q, m in
                             ((prev, 480), (ph, n), (nxt, 480))]
                    audio[utt] = gain[spk] * np.concatenate([np.sin(2 * np.pi * p)
                                                             for p in parts])
                    audio[utt] += 0.001 * rng.normal(size=len(audio[utt]))
                    alignments[utt] = [(0.0, 0.03, prev), (0.03, 0.03 + n / sr, ph),
                                       (0.03 + n / sr, 0.06 + n / sr, nxt)]
                    speakers[utt] = spk
    feats, rate = mfcc_features(audio, sr)
    items = items_from_alignments(alignments, speakers)
    assert abx_error(items, feats, rate, mode="across")["error"] < 0.05


# ---------------------------------------------------------------- bitrate

def test_bitrate_known_values():
    assert bitrate([[7] * 50, [7] * 30], [1.0, 0.6]) == 0.0  # one unit: no information
    assert unit_entropy([[0, 1] * 10]) == pytest.approx(1.0)
    assert bitrate([[0, 1] * 10], [2.0]) == pytest.approx(10.0)  # 10 symbols/s, 1 bit
    uniform4 = np.tile(np.arange(4), 25)
    assert bitrate([uniform4[:60], uniform4[60:]], [1.2, 0.8]) == pytest.approx(100.0)
    assert bitrate({"u": uniform4, "v": uniform4}, {"u": 2.0, "v": 2.0}) == pytest.approx(100.0)


def test_bitrate_dedupe_and_multi_level_units():
    seq = [0, 0, 1, 1]  # 4 symbols in 1 s, 1 bit each; collapsed: 2 symbols
    assert bitrate([seq], [1.0]) == pytest.approx(4.0)
    assert bitrate([seq], [1.0], dedupe=True) == pytest.approx(2.0)
    two_level = np.array([[0, 0], [0, 1], [1, 0], [1, 1]] * 5)  # rows are joint symbols
    assert bitrate([two_level], [1.0]) == pytest.approx(20 * 2.0)
    with pytest.raises(ValueError):
        bitrate([seq], [0.0])
    with pytest.raises(ValueError):
        bitrate([seq, seq], [1.0])


def test_real_speech_protocol_gets_abx_items_from_an_alignment_manifest(real_speech, tmp_path):
    """Held-out VCTK clips aligned by `vc.data align` give ABX items to a real-speech protocol,
    whose own corpora carry no alignments."""
    from eval.content_metrics import AbxSet
    from eval.protocol import build_real_speech_protocol
    from vc.data import read_corpus
    from vc.data.align import align_corpus

    protocol = build_real_speech_protocol(real_speech, trials=4, seed=0, corpora=["vctk"])
    assert AbxSet.from_protocol(protocol).items == []
    vctk = [u for u in read_corpus(real_speech / "vctk") if u.path.stem.endswith(("_003", "_005", "_008"))]
    manifest = tmp_path / "aligned.jsonl"
    align_corpus(vctk, manifest, progress=False)
    protocol.metadata["alignments"] = str(manifest)
    abx = AbxSet.from_protocol(protocol, per_speaker=3)
    assert len(abx.items) > 20 and len(abx.audio) >= 4
    assert {item.speaker for item in abx.items} == {"vctk:p225", "vctk:p226"}

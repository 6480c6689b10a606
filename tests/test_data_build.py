"""The synthetic corpus builder, run for real on a tiny corpus (3 voices x 2 sentences)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vc.data import build_corpus, engines, read_corpus, speakers_of
from vc.data.__main__ import main as data_cli
from vc.data.build import finish_audio
from vc.data.voices import VoiceSpec, full_catalogue, voice_catalogue
from vc.errors import VoicelabError

AVAILABLE = engines.available_voices()
PRESENT = sorted(e for e, voices in AVAILABLE.items() if voices)
needs_engine = pytest.mark.skipif(not PRESENT, reason=f"no speech engine installed (apt-get install {engines.DEBIAN_PACKAGES})")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """One voice per engine family present, two sentences each, built with two workers."""
    if not PRESENT:
        pytest.skip(f"no speech engine installed (apt-get install {engines.DEBIAN_PACKAGES})")
    out = tmp_path_factory.mktemp("corpus") / "tiny"
    result = build_corpus(out, voices=len(PRESENT), sentences=2, seed=3, jobs=2, progress=False)
    assert result.failed == {} and result.rendered == 2 * len(PRESENT) and result.reused == 0
    return out


def _manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


@needs_engine
def test_tiny_corpus_wavs_and_manifest(tiny):
    rows = _manifest(tiny)
    assert len(rows) == 2 * len(PRESENT)
    assert sorted({r["engine"] for r in rows}) == PRESENT  # one voice per engine family
    for row in rows:
        wav = tiny / row["path"]
        assert wav.is_file() and wav.parent.parent == tiny / "wavs" and wav.parent.name == row["speaker"]
        info = sf.info(str(wav))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        audio, _ = sf.read(str(wav), dtype="float32")
        seconds = len(audio) / 16000
        words = len(row["text"].split())
        assert 0.15 * words < seconds < 0.8 * words + 2.0, (row["path"], seconds, words)  # a plausible speaking rate
        assert np.sqrt(np.mean(audio ** 2)) > 0.02 and np.abs(audio).max() > 0.5  # speech, not silence
        assert row["duration"] == pytest.approx(seconds, abs=1e-3)
        assert row["split"] in ("train", "test") and row["corpus"] == "synthetic" and row["text"]


@needs_engine
def test_alignments_are_monotonic_and_cover_the_audio(tiny):
    for row in _manifest(tiny):
        if row["alignment"] is None:  # allowed only where the engine cannot tell
            assert row["engine"] == "espeak" and not engines.espeak_has_alignment()
            continue
        segments = row["alignment"]
        duration = row["duration"]
        assert len(segments) >= len(row["text"].split())  # at least a phone per word
        for (on, off, phone), (next_on, _, _) in zip(segments, segments[1:] + [[duration, 0, ""]]):
            assert 0 <= on <= off <= next_on + 1e-6 and phone
        assert segments[-1][1] <= duration + 1e-6 and segments[-1][1] > 0.8 * duration
        audio, _ = sf.read(str(tiny / row["path"]), dtype="float32")
        # Pauses the engine reports inside the sentence really are quieter than its speech.
        rms = lambda on, off: float(np.sqrt(np.mean(audio[int(on * 16000):int(off * 16000)] ** 2) + 1e-12))
        speech = np.mean([rms(on, off) for on, off, p in segments if p != "pau" and off - on > 0.04])
        pauses = [rms(on, off) for on, off, p in segments[1:-1] if p == "pau" and off - on > 0.08]
        assert all(p < 0.3 * speech for p in pauses)


@needs_engine
def test_parallel_subset_split_and_corpus_json(tiny):
    rows = _manifest(tiny)
    parallel = [r for r in rows if r["parallel"]]
    assert {r["speaker"] for r in parallel} == set(speakers_of(read_corpus(tiny)))
    assert len({(r["sentence_id"], r["text"]) for r in parallel}) == 1  # everyone reads the same sentence
    own = [r["text"] for r in rows if not r["parallel"]]
    assert len(set(own)) == len(own)
    splits = {}
    for row in rows:
        assert splits.setdefault(row["speaker"], row["split"]) == row["split"]  # speaker-disjoint
    if len(PRESENT) > 1:
        assert list(splits.values()).count("test") == 1
    meta = json.loads((tiny / "corpus.json").read_text())
    assert (meta["seed"], meta["voices"], meta["sentences"], meta["sample_rate"]) == (3, len(PRESENT), 2, 16000)
    assert {s["name"]: s["split"] for s in meta["speakers"]} == splits


@needs_engine
def test_same_seed_same_manifest_and_resume(tiny, tmp_path, capsys):
    # Two fresh processes, as two users' runs: libespeak-ng's output depends on what the
    # process synthesized before, so an in-process comparison with `tiny` would test history.
    import subprocess
    import sys
    builds = []
    for name in ("again", "once-more"):
        args = ["build-corpus", "--out", str(tmp_path / name), "--voices", str(len(PRESENT)),
                "--sentences", "2", "--seed", "3", "--jobs", "1", "--quiet"]
        done = subprocess.run([sys.executable, "-m", "vc.data", *args], capture_output=True, text=True,
                              timeout=600, cwd=Path(__file__).resolve().parents[1])
        assert done.returncode == 0, done.stderr[-2000:]
        builds.append(tmp_path / name)
    again = builds[0]
    assert (again / "manifest.jsonl").read_text() == (builds[1] / "manifest.jsonl").read_text()
    assert (again / "corpus.json").read_text() == (builds[1] / "corpus.json").read_text()
    assert (again / "corpus.json").read_text() == (tiny / "corpus.json").read_text()
    stamp = {p: p.stat().st_mtime_ns for p in (again / "wavs").rglob("*.wav")}
    assert data_cli(args) == 0
    assert "rendered 0, reused" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in (again / "wavs").rglob("*.wav")} == stamp
    # A truncated wav is noticed and rendered again.
    victim = sorted(stamp)[0]
    victim.write_bytes(victim.read_bytes()[:100])
    result = build_corpus(again, voices=len(PRESENT), sentences=2, seed=3, jobs=1, progress=False)
    assert (result.rendered, result.reused) == (1, 2 * len(PRESENT) - 1)
    assert sf.info(str(victim)).frames > 1000


@pytest.mark.skipif("flite" not in PRESENT or "slt" not in AVAILABLE.get("flite", ()), reason="flite's slt voice is not installed")
def test_tempo_variant_scales_alignment():
    plain = VoiceSpec("p", "flite", "slt")
    slow = VoiceSpec("s", "flite", "slt", shift_cents=-300, tempo=0.8)
    (rendered,) = engines.render_flite("slt", ["Why does the quiet rabbit wait so slowly near the old station?"])
    audio_plain, align_plain = finish_audio(rendered, plain)
    audio_slow, align_slow = finish_audio(rendered, slow)
    assert len(audio_slow) / len(audio_plain) == pytest.approx(1.25, rel=0.03)
    assert len(align_slow) == len(align_plain)
    ratios = [s.offset / p.offset for s, p in zip(align_slow, align_plain) if p.offset > 0.3]
    assert np.allclose(ratios, 1.25, rtol=0.02)


def test_catalogue_is_seeded_spread_and_large_enough():
    names = [v.name for v in full_catalogue()]
    assert len(names) == len(set(names)) and len(names) >= 30
    first = voice_catalogue(seed=0)
    assert [v.name for v in first] == [v.name for v in voice_catalogue(seed=0)]
    assert [v.name for v in first] != [v.name for v in voice_catalogue(seed=1)]
    assert {v.engine for v in first[:3]} == {"flite", "festival", "espeak"}
    assert sum(v.engine == "espeak" for v in first[:30]) == 10


def test_no_engine_gives_install_hint(tmp_path, monkeypatch):
    monkeypatch.setattr(engines, "available_voices", lambda: {e: set() for e in engines.ENGINES})
    with pytest.warns(UserWarning, match="not installed"):
        with pytest.raises(VoicelabError, match="apt-get install espeak-ng flite festival"):
            build_corpus(tmp_path / "none", voices=1, sentences=1, progress=False)
    with pytest.raises(VoicelabError, match="unknown engine"):
        build_corpus(tmp_path / "none", voices=1, sentences=1, engine_names=["mbrola"], progress=False)


@needs_engine
def test_speaker_report_separates_the_tiny_voices(tiny, tmp_path):
    speaker = pytest.importorskip("vc.speaker")
    from vc.data.speaker_report import speaker_report

    if len(PRESENT) < 2:
        pytest.skip("needs two engine families for two distinct voices")
    report = speaker_report(tiny, out_dir=tmp_path, encoder=speaker.SpeakerEncoder.pretrained())
    saved = json.loads((tmp_path / "speaker_report.json").read_text())
    assert len(saved["matrix"]) == len(PRESENT) and saved["speakers"] == report["speakers"]
    assert saved["same_voice_mean"] > saved["cross_voice_mean"] + 0.1
    assert np.allclose(np.diag(saved["matrix"]), 1.0, atol=1e-3)


def test_subset_keeps_a_split_and_drops_other_corpora_test_speakers(tiny, tmp_path, capsys):
    corpus = read_corpus(tiny)
    test_speakers = {u.speaker for u in corpus if u.extra.get("split") == "test"}
    assert test_speakers and test_speakers != {u.speaker for u in corpus}
    out = tmp_path / "train.jsonl"
    assert data_cli(["subset", "--corpus", str(tiny), "--out", str(out), "--split", "train"]) == 0
    kept = read_corpus(out)
    assert kept and not {u.speaker for u in kept} & test_speakers
    # the same corpus as "another": its test speakers are dropped even without --split
    assert data_cli(["subset", "--corpus", str(tiny), "--out", str(out), "--exclude-test-of", str(tiny)]) == 0
    assert {u.speaker for u in read_corpus(out)} == {u.speaker for u in corpus} - test_speakers
    assert data_cli(["subset", "--corpus", str(tiny), "--out", str(out), "--split", "nope"]) == 2
    assert "nothing left" in capsys.readouterr().err

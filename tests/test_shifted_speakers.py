"""Shifted copies of real speakers: duration and alignment kept, the spectrum moved, resumable."""
import json
import subprocess
import sys

import librosa
import numpy as np
import pytest
import soundfile as sf

from vc.data.manifest import read_manifest
from vc.data.shifted_speakers import shift_clip, shift_speakers
from vc.errors import VoicelabError


@pytest.fixture
def one_clip_manifest(real_speech, tmp_path):
    clip = real_speech / "vctk" / "p225" / sorted(p.name for p in (real_speech / "vctk" / "p225").glob("*.wav"))[0]
    row = {"path": str(clip), "speaker": "p225", "text": "please call stella",
           "alignment": [[0.0, 0.5, "sil"], [0.5, 0.9, "p"]]}
    manifest = tmp_path / "in.jsonl"
    manifest.write_text(json.dumps(row) + "\n")
    return manifest, clip


def _median_f0(samples, sr):
    f0, _, _ = librosa.pyin(samples, fmin=60, fmax=500, sr=sr, resolution=0.25)
    return float(np.nanmedian(f0))


def test_shifts_keep_duration_and_alignment_and_move_pitch(one_clip_manifest, tmp_path):
    manifest, clip = one_clip_manifest
    out, rendered, reused = shift_speakers(manifest, tmp_path / "out", [-300, 300])
    assert (rendered, reused) == (2, 0)
    rows = read_manifest(out)
    assert sorted(u.speaker for u in rows) == ["p225+300c", "p225-300c"]
    original, sr = sf.read(clip, dtype="float32")
    f0 = _median_f0(original, sr)
    for utt in rows:
        samples, rate = sf.read(utt.path, dtype="float32")
        assert rate == 16000 and abs(len(samples) / rate - len(original) / sr) < 0.02
        assert utt.text == "please call stella" and [s.phone for s in utt.alignment] == ["sil", "p"]
        cents = 1200 * np.log2(_median_f0(samples, rate) / f0)
        assert abs(cents - utt.extra["shift_cents"]) < 120, (utt.speaker, cents)
    # a second run reuses what is there
    assert shift_speakers(manifest, tmp_path / "out", [-300, 300])[1:] == (0, 2)


def test_bad_shifts_are_refused_with_a_message(one_clip_manifest, tmp_path):
    manifest, _ = one_clip_manifest
    for cents in ([], [0], [200, 200], [5000]):
        with pytest.raises(VoicelabError, match="distinct non-zero shifts"):
            shift_speakers(manifest, tmp_path / "out", cents)
    result = subprocess.run([sys.executable, "-m", "vc.data", "shift-speakers", "--manifest", str(tmp_path / "none.jsonl"),
                             "--out", str(tmp_path / "o"), "--quiet"], capture_output=True, text=True)
    assert result.returncode == 2 and "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_a_clip_sox_cannot_read_is_refused_and_leaves_nothing_behind(tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio at all")
    out = tmp_path / "out" / "shifted.wav"
    with pytest.raises(VoicelabError, match="sox failed on broken.wav"):
        shift_clip(broken, out, 200)
    assert not out.exists() and list(out.parent.iterdir()) == []

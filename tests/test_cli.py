"""`python -m vc` runs as a user would run it."""
from __future__ import annotations

import subprocess
import sys

from vc.audio import load_audio
from conftest import REPO


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vc", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300)


def test_similarity_and_resynthesis(real_speech, tmp_path):
    p225 = sorted((real_speech / "vctk" / "p225").glob("*.wav"))
    p226 = sorted((real_speech / "vctk" / "p226").glob("*.wav"))
    result = run("similarity", str(p225[0]), str(p225[1]), str(p226[0]))
    assert result.returncode == 0, result.stderr
    scores = [float(line.split()[0]) for line in result.stdout.splitlines()]
    assert len(scores) == 3
    assert scores[0] > max(scores[1:])  # same speaker first
    out = tmp_path / "gl.wav"
    result = run("resynthesize", str(p226[0]), "--out", str(out), "--iterations", "4")
    assert result.returncode == 0, result.stderr
    assert load_audio(out).duration > 1.0


def test_bad_input_is_a_message_not_a_traceback(tmp_path):
    result = run("resynthesize", str(tmp_path / "nothing.wav"), "--out", str(tmp_path / "o.wav"))
    assert result.returncode == 2
    assert "no such file" in result.stderr
    assert "Traceback" not in result.stderr

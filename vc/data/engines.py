"""The speech synthesisers Debian ships, driven from Python, each with its phone alignment.

  flite      `flite -psdur` prints every segment with its end time.
  festival   a Scheme script walks the utterance's Segment relation and prints name and end.
  espeak-ng  libespeak-ng's phoneme events (via ctypes) give each phoneme's start sample.
             Without the library we fall back to the `espeak-ng` command, with no alignment.

Every engine renders a batch of texts for one of its voices and returns `Rendered` records:
float32 audio at the engine's own rate plus segments in seconds (silences named "pau").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from vc.errors import VoicelabError
from vc.data.utterance import Segment

ENGINES = ("flite", "festival", "espeak")
DEBIAN_PACKAGES = "espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts sox"
_TIMEOUT_S = 120  # one batch of a few sentences takes about a second; a hang means a broken engine


@dataclass
class Rendered:
    audio: np.ndarray  # (T,) float32
    sample_rate: int
    alignment: list[Segment] | None


class EngineError(VoicelabError):
    """An engine ran but did not give usable speech for a text."""


# ---------------------------------------------------------------------------------------- flite


def flite_voices() -> set[str]:
    if not shutil.which("flite"):
        return set()
    out = subprocess.run(["flite", "-lv"], capture_output=True, text=True, timeout=30).stdout
    return set(out.partition(":")[2].split())


def render_flite(voice: str, texts: list[str], f0_scale: float = 1.0) -> list[Rendered]:
    """`f0_scale` multiplies the voice's pitch (flite's f0_shift; the rms voice ignores it)."""
    results = []
    options = ["--setf", f"f0_shift={f0_scale:.4f}"] if f0_scale != 1.0 else []
    with tempfile.TemporaryDirectory(prefix="vc-flite-") as tmp:
        wav = Path(tmp) / "out.wav"
        for text in texts:
            proc = _run(["flite", "-voice", voice, *options, "-psdur", "-t", text, "-o", str(wav)], f"flite voice {voice}")
            audio, sr = _read_wav(wav, f"flite voice {voice}")
            results.append(Rendered(audio, sr, _parse_flite_segments(proc.stdout, len(audio) / sr)))
    return results


def _parse_flite_segments(stdout: str, duration: float) -> list[Segment]:
    """'pau:0.184 dh:0.236 ...' (phone:end seconds), one line per utterance flite made."""
    ends = []
    offset = 0.0
    for line in stdout.splitlines():
        pairs = [token.rpartition(":") for token in line.split() if ":" in token]
        line_ends = [(phone, offset + float(end)) for phone, _, end in pairs]
        if line_ends:
            ends.extend(line_ends)
            offset = line_ends[-1][1]
    return _segments_from_ends(ends, duration)


# ------------------------------------------------------------------------------------- festival


def festival_voices() -> set[str]:
    if not shutil.which("festival"):
        return set()
    proc = _run_scheme("(print (voice.list))", "festival voice list")
    return set(proc.stdout.strip().strip("()").split())


def render_festival(voice: str, texts: list[str], f0_scale: float = 1.0) -> list[Rendered]:
    """One festival process per batch: its start-up (~0.3 s) costs more than a sentence.

    `f0_scale` multiplies the target pitch of the diphone voices' intonation model (the HTS
    voice makes its own pitch and ignores it).
    """
    with tempfile.TemporaryDirectory(prefix="vc-festival-") as tmp:
        lines = [f"(voice_{voice})"]
        if f0_scale != 1.0:
            scaled = " ".join(f"(list '{key} (* {f0_scale:.4f} (car (cdr (assoc '{key} int_lr_params)))))"
                              for key in ("target_f0_mean", "target_f0_std"))
            lines.append(f"(set! int_lr_params (list {scaled} (assoc 'model_f0_mean int_lr_params)"
                         " (assoc 'model_f0_std int_lr_params)))")
        for i, text in enumerate(texts):
            wav = Path(tmp) / f"{i}.wav"
            lines += [
                f'(set! u (Utterance Text "{_scheme_string(text)}"))',
                "(utt.synth u)",
                f'(utt.save.wave u "{_scheme_string(str(wav))}" \'riff)',
                f'(format t "@utt {i}\\n")',
                "(mapcar (lambda (s) (format t \"%s %f\\n\" (item.name s) (item.feat s \"end\")))"
                " (utt.relation.items u 'Segment))",
            ]
        proc = _run_scheme("\n".join(lines), f"festival voice {voice}")
        ends_by_utt: dict[int, list] = {}
        current = None
        for line in proc.stdout.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == "@utt":
                current = ends_by_utt.setdefault(int(parts[1]), [])
            elif len(parts) == 2 and current is not None:
                current.append((parts[0], float(parts[1])))
        results = []
        for i in range(len(texts)):
            audio, sr = _read_wav(Path(tmp) / f"{i}.wav", f"festival voice {voice}")
            results.append(Rendered(audio, sr, _segments_from_ends(ends_by_utt.get(i, []), len(audio) / sr)))
        return results


def _scheme_string(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _run_scheme(script: str, what: str) -> subprocess.CompletedProcess:
    with tempfile.NamedTemporaryFile("w", suffix=".scm", delete=False) as handle:
        handle.write(script + "\n")
    try:
        return _run(["festival", "-b", handle.name], what)
    finally:
        Path(handle.name).unlink(missing_ok=True)


# ------------------------------------------------------------------------------------ espeak-ng

_ESPEAK_SYNCHRONOUS = 2  # AUDIO_OUTPUT_SYNCHRONOUS: audio comes back through our callback
_ESPEAK_PHONEME_EVENTS = 0x0001
_ESPEAK_DONT_EXIT = 0x8000  # report errors instead of exiting our process
_EVENT_PHONEME = 7
_PARAM_RATE, _PARAM_PITCH = 1, 3
ESPEAK_DEFAULT_RATE, ESPEAK_DEFAULT_PITCH = 175, 50


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):  # espeak_EVENT in speak_lib.h
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


class _EspeakLibrary:
    """libespeak-ng in synchronous mode. One per process: the library keeps global state."""

    def __init__(self):
        name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        self.lib = ctypes.CDLL(name)
        self.sample_rate = self.lib.espeak_Initialize(
            _ESPEAK_SYNCHRONOUS, 0, None, _ESPEAK_PHONEME_EVENTS | _ESPEAK_DONT_EXIT)
        if self.sample_rate <= 0:
            raise OSError("espeak_Initialize failed (is espeak-ng-data installed?)")
        self._chunks: list[np.ndarray] = []
        self._phones: list[tuple[int, str]] = []
        self._callback = _CALLBACK(self._on_audio)  # kept on self so it is not garbage-collected
        self.lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, samples, count, events) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(samples, (count,)).copy())
        i = 0
        while events[i].type != 0:  # the event list ends with espeakEVENT_LIST_TERMINATED
            if events[i].type == _EVENT_PHONEME:
                self._phones.append((events[i].sample, events[i].id.string.decode("ascii", "replace")))
            i += 1
        return 0

    def synth(self, voice: str, text: str, rate: int, pitch: int) -> Rendered:
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise EngineError(f"espeak-ng has no voice {voice!r}; list them with `espeak-ng --voices=en`")
        self.lib.espeak_SetParameter(_PARAM_RATE, int(rate), 0)
        self.lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
        self._chunks, self._phones = [], []
        data = text.encode("utf-8") + b"\0"
        self.lib.espeak_Synth(data, len(data), 0, 0, 0, 0, None, None)  # flags 0 = plain text
        self.lib.espeak_Synchronize()
        audio = np.concatenate(self._chunks).astype(np.float32) / 32768.0 if self._chunks else np.zeros(0, np.float32)
        duration = len(audio) / self.sample_rate
        onsets = [(sample / self.sample_rate, phone) for sample, phone in self._phones]
        return Rendered(audio, self.sample_rate, _segments_from_onsets(onsets, duration))


@functools.lru_cache(maxsize=1)
def _espeak_library() -> _EspeakLibrary | None:
    try:
        return _EspeakLibrary()
    except OSError:
        return None


def espeak_voices() -> set[str]:
    """Language voices of espeak-ng (variants are added with "+name" and need no listing)."""
    if not shutil.which("espeak-ng") and _espeak_library() is None:
        return set()
    binary = shutil.which("espeak-ng")
    if binary is None:
        return {"en", "en-us", "en-gb"}
    out = subprocess.run([binary, "--voices=en"], capture_output=True, text=True, timeout=30).stdout
    return {line.split()[1] for line in out.splitlines()[1:] if len(line.split()) > 4 and "/mb-" not in line}


def espeak_has_alignment() -> bool:
    return _espeak_library() is not None


def render_espeak(voice: str, texts: list[str], rate: int = ESPEAK_DEFAULT_RATE,
                  pitch: int = ESPEAK_DEFAULT_PITCH) -> list[Rendered]:
    library = _espeak_library()
    if library is not None:
        return [library.synth(voice, text, rate, pitch) for text in texts]
    results = []  # command-line fallback: same voices, but espeak-ng prints no timings
    with tempfile.TemporaryDirectory(prefix="vc-espeak-") as tmp:
        wav = Path(tmp) / "out.wav"
        for text in texts:
            _run(["espeak-ng", "-v", voice, "-s", str(rate), "-p", str(pitch), "-w", str(wav), text],
                 f"espeak-ng voice {voice}")
            audio, sr = _read_wav(wav, f"espeak-ng voice {voice}")
            results.append(Rendered(audio, sr, None))
    return results


# -------------------------------------------------------------------------------------- shared


def _run(command: list[str], what: str) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise EngineError(f"{what} did not finish within {_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        raise EngineError(f"{what} failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    return proc


def _read_wav(path: Path, what: str) -> tuple[np.ndarray, int]:
    if not path.is_file() or path.stat().st_size <= 44:
        raise EngineError(f"{what} wrote no audio")
    audio, sr = sf.read(path, dtype="float32", always_2d=True)
    return audio.mean(axis=1), sr


def _is_pause(phone: str) -> bool:
    return phone in ("pau", "sil", "h#", "#") or phone.startswith("_")


def _segments_from_ends(ends: list[tuple[str, float]], duration: float) -> list[Segment]:
    """Segments from (phone, end time) pairs, clipped to the audio (diphone voices overrun a little)."""
    segments, onset = [], 0.0
    for phone, end in ends:
        end = min(end, duration)
        if end > onset:
            segments.append(Segment(onset, end, "pau" if _is_pause(phone) else phone))
            onset = end
    return _merge_pauses(segments)


def _segments_from_onsets(onsets: list[tuple[float, str]], duration: float) -> list[Segment]:
    """Segments from (start time, phone) pairs; leading audio before the first phone is a pause."""
    points = [(0.0, "pau")] + [(min(t, duration), p) for t, p in onsets] + [(duration, "")]
    segments = [Segment(t0, t1, "pau" if _is_pause(p) else p)
                for (t0, p), (t1, _) in zip(points, points[1:]) if t1 > t0]
    return _merge_pauses(segments)


def _merge_pauses(segments: list[Segment]) -> list[Segment]:
    merged: list[Segment] = []
    for seg in segments:
        if merged and seg.phone == "pau" and merged[-1].phone == "pau":
            merged[-1] = Segment(merged[-1].onset, seg.offset, "pau")
        else:
            merged.append(seg)
    return merged


RENDERERS = {"flite": render_flite, "festival": render_festival, "espeak": render_espeak}


def available_voices() -> dict[str, set[str]]:
    """Voices each engine offers on this machine; an engine that is missing maps to an empty set."""
    found = {}
    for engine, lister in (("flite", flite_voices), ("festival", festival_voices), ("espeak", espeak_voices)):
        try:
            found[engine] = lister()
        except (OSError, subprocess.SubprocessError, VoicelabError):
            found[engine] = set()
    return found


def version_of(engine: str) -> str:
    """A one-line version string, for the corpus description."""
    command = {"flite": ["flite", "--version"], "festival": ["festival", "--version"],
               "espeak": ["espeak-ng", "--version"]}[engine]
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    match = re.search(r"\d+\.\d+(\.\d+)?", out)
    return match.group(0) if match else "unknown"

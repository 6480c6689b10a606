"""Manifest files: one row per utterance, as CSV or JSON Lines.

Required fields: `path` (relative to the manifest's folder, or absolute) and `speaker`.
Optional: `text`, `alignment` (a list of [onset, offset, phone]; in CSV a JSON string), and
anything else (split, engine, voice, ...), which lands in `Utterance.extra`.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path
from typing import Iterable

from vc.errors import VoicelabError
from vc.data.utterance import Utterance, alignment_to_json, parse_alignment

MANIFEST_SUFFIXES = (".jsonl", ".csv", ".tsv")
_CORE_FIELDS = ("path", "speaker", "text", "alignment")


def read_manifest(path: str | os.PathLike, check_files: bool = True, corpus: str = "manifest") -> list[Utterance]:
    """Read a CSV/TSV or JSONL manifest into utterances.

    Args:
        path: the manifest file.
        check_files: raise if a listed audio file does not exist (off for speed on huge lists).
        corpus: the corpus name to put on each utterance (a `corpus` column wins).
    """
    path = Path(path)
    if not path.is_file():
        raise VoicelabError(f"manifest {path} does not exist; give a .jsonl or .csv file with path and speaker fields")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows = list(_jsonl_rows(path))
    elif suffix in (".csv", ".tsv"):
        rows = list(_csv_rows(path, delimiter="\t" if suffix == ".tsv" else ","))
    else:
        raise VoicelabError(f"manifest {path} has suffix {suffix!r}; manifests are .jsonl, .csv or .tsv")
    if not rows:
        raise VoicelabError(f"manifest {path} lists no utterances; add one row per audio file (path, speaker, text)")

    utterances = []
    for where, row in rows:
        missing = [key for key in ("path", "speaker") if not row.get(key)]
        if missing:
            raise VoicelabError(f"{where}: missing {', '.join(missing)}; every row needs path and speaker")
        audio = Path(str(row["path"]))
        if not audio.is_absolute():
            audio = path.parent / audio
        if check_files and not audio.is_file():
            raise VoicelabError(f"{where}: audio file {audio} does not exist (paths are relative to the manifest's folder)")
        text = row.get("text")
        alignment = row.get("alignment")
        if isinstance(alignment, str) and alignment.strip():
            try:
                alignment = json.loads(alignment)
            except json.JSONDecodeError as err:
                raise VoicelabError(f"{where}: alignment column is not JSON ({err}); write [[onset, offset, phone], ...]") from None
        extra = {k: v for k, v in row.items() if k not in _CORE_FIELDS and k != "corpus"}
        utterances.append(
            Utterance(
                path=audio,
                speaker=str(row["speaker"]),
                text=str(text) if text not in (None, "") else None,
                alignment=parse_alignment(alignment, where),
                corpus=str(row.get("corpus") or corpus),
                extra=extra,
            )
        )
    return utterances


def write_manifest(utterances: Iterable[Utterance], path: str | os.PathLike) -> Path:
    """Write utterances as .jsonl or .csv (by suffix), paths relative to the manifest's folder.

    Written to a temporary file first and moved into place, so a reader never sees half a file.
    """
    path = Path(path)
    rows = [_row_of(u, path.parent) for u in utterances]
    suffix = path.suffix.lower()
    if suffix not in MANIFEST_SUFFIXES:
        raise VoicelabError(f"cannot write manifest {path}: use a .jsonl, .csv or .tsv file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".part", delete=False, encoding="utf-8", newline="") as tmp:
        if suffix == ".jsonl":
            for row in rows:
                tmp.write(json.dumps(row, ensure_ascii=False) + "\n")
        else:
            fields = list(_CORE_FIELDS) + sorted({k for row in rows for k in row} - set(_CORE_FIELDS))
            writer = csv.DictWriter(tmp, fieldnames=fields, delimiter="\t" if suffix == ".tsv" else ",")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: _csv_cell(v) for k, v in row.items()})
    os.replace(tmp.name, path)
    return path


def _row_of(utt: Utterance, root: Path) -> dict:
    try:
        rel = os.path.relpath(utt.path, root)
    except ValueError:  # another drive on Windows
        rel = str(utt.path)
    row = {"path": Path(rel).as_posix(), "speaker": utt.speaker, "text": utt.text,
           "alignment": alignment_to_json(utt.alignment), "corpus": utt.corpus}
    row.update(utt.extra)
    return row


def _csv_cell(value):
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else value


def _jsonl_rows(path: Path):
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise VoicelabError(f"{where}: not valid JSON ({err}); each line must be one JSON object") from None
            if not isinstance(row, dict):
                raise VoicelabError(f"{where}: each line must be a JSON object with path and speaker")
            yield where, row


def _csv_rows(path: Path, delimiter: str):
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        if not reader.fieldnames or "path" not in reader.fieldnames or "speaker" not in reader.fieldnames:
            raise VoicelabError(
                f"{path}: the header row is {reader.fieldnames}; a manifest needs at least the columns path and speaker"
            )
        for number, row in enumerate(reader, 2):
            yield f"{path}:{number}", {k: v for k, v in row.items() if k is not None}

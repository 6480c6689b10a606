"""The record every reader yields: one audio file, who speaks in it, and what is said.

Readers for different corpus layouts all end in a list of `Utterance`, so training and
evaluation code never needs to know whether the speech came from VCTK, LibriSpeech, a folder
tree or our own synthetic corpus.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from vc.errors import VoicelabError

# File name endings we treat as audio when scanning folders (lower case, with the dot).
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".aiff", ".aif", ".au")


@dataclass(frozen=True)
class Segment:
    """One phone of a time alignment, times in seconds from the start of the file."""

    onset: float
    offset: float
    phone: str

    def __post_init__(self):
        if not (self.offset >= self.onset >= 0.0):
            raise VoicelabError(
                f"alignment segment {self.phone!r} has onset {self.onset} and offset {self.offset};"
                " a segment needs 0 <= onset <= offset (seconds)"
            )


@dataclass(frozen=True)
class Utterance:
    """One recording of one speaker.

    Args:
        path: the audio file (absolute, or as the reader found it).
        speaker: speaker id, unique within the list it came in.
        text: the transcript, or None where the corpus has none.
        alignment: phone segments in time order, or None where nothing is known.
            A tuple (not a list) so the record stays immutable and hashable.
        corpus: the name of the source ("vctk", "librispeech", "libritts", "folder",
            "manifest", or the label given to `read_corpora`).
        extra: any further fields a manifest carried (split, engine, voice, sentence_id, ...).
            Not part of equality or hashing.
    """

    path: Path
    speaker: str
    text: str | None
    alignment: tuple[Segment, ...] | None
    corpus: str
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def utt_id(self) -> str:
        """The file name without its extension, e.g. "p225_003"."""
        return self.path.stem


def is_audio_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in AUDIO_EXTENSIONS and not path.name.startswith(".")


def parse_alignment(value: Any, where: str) -> tuple[Segment, ...] | None:
    """Turn a manifest's alignment field into segments.

    Accepts None/"" (no alignment), a list of [onset, offset, phone] triples, or a list of
    {"onset", "offset", "phone"} objects. `where` names the record in error messages.
    """
    if value is None or value == "" or value == []:
        return None
    if not isinstance(value, (list, tuple)):
        raise VoicelabError(
            f"{where}: alignment must be a list of [onset, offset, phone] triples or"
            f" {{onset, offset, phone}} objects, got {type(value).__name__}"
        )
    segments = []
    for item in value:
        try:
            if isinstance(item, Mapping):
                seg = Segment(float(item["onset"]), float(item["offset"]), str(item["phone"]))
            else:
                onset, offset, phone = item
                seg = Segment(float(onset), float(offset), str(phone))
        except (KeyError, TypeError, ValueError) as err:
            raise VoicelabError(
                f"{where}: alignment entry {item!r} is not [onset, offset, phone]"
                f" or {{onset, offset, phone}} ({err})"
            ) from None
        segments.append(seg)
    for before, after in zip(segments, segments[1:]):
        if after.onset < before.onset - 1e-6:
            raise VoicelabError(f"{where}: alignment is not in time order ({before} then {after})")
    return tuple(segments)


def alignment_to_json(alignment: Iterable[Segment] | None) -> list[list] | None:
    """The compact manifest form: [[onset, offset, phone], ...] with millisecond precision."""
    if alignment is None:
        return None
    return [[round(s.onset, 4), round(s.offset, 4), s.phone] for s in alignment]

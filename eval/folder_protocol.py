"""Folder protocols: every source clip converted into every reference voice.

    python -m eval folder-protocol --sources clips/ --references voices/ --texts clips.tsv --out p.json

    from eval.folder_protocol import build_folder_protocol
    protocol = build_folder_protocol("clips/", "voices/", texts="clips.tsv", trials=200, seed=0)

This is the shape of Seed-VC's evaluation: a folder of source clips and a folder of target
voices, crossed. Sources are audio files at any depth (each file its own speaker,
"source:<stem>"), or a corpus `vc.data.read_corpus` reads (LJSpeech, VCTK, LibriSpeech, a folder
per speaker, a manifest), which keeps its speakers and transcripts. A reference voice is one
audio file directly in the references folder or one sub-folder of clips ("ref:<stem or name>").
Sources without a transcript are marked for WER against the ASR of the unconverted source
(metadata "wer_reference", see `eval.protocol.Protocol`).
"""

from __future__ import annotations

import csv
import io
import os
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from vc import __version__
from vc.data import Utterance, detect_layout, read_corpus
from vc.data.utterance import AUDIO_EXTENSIONS, is_audio_file
from vc.errors import VoicelabError

from .protocol import Protocol, ProtocolError, Trial, _speaker_genders, wer_reference_of

SOURCE_PREFIX, VOICE_PREFIX = "source:", "ref:"
PLAIN_SOURCES, REFERENCES = "sources", "references"  # corpus names of plain source files and of the voices
# First fields that mark a texts file's first line as a header rather than a source's name.
_HEADER_NAMES = {"id", "name", "file", "filename", "file_name", "path", "audio", "utt", "utt_id", "utterance"}


@dataclass(frozen=True)
class _Voice:
    name: str
    clips: tuple[Path, ...]


def build_folder_protocol(sources: str | os.PathLike, references: str | os.PathLike,
                          texts: str | os.PathLike | None = None, trials: int | None = None, seed: int = 0,
                          max_references: int | None = None) -> Protocol:
    """Every source with every reference voice, or `trials` of those pairs drawn at random.

    A source and a voice are never paired when they are the same speaker: the source file is
    one of the voice's clips, or the source's speaker id without its prefix ("source:", or a
    corpus name like "vctk:") is the voice's name, e.g. sources/p225_001.wav and references/p225/.

    Args:
        sources: a folder of audio files (searched recursively; each file is its own speaker
            "source:<stem>", or "source:<relative path>" where stems repeat), or a corpus
            `vc.data.read_corpus` reads, whose speakers and transcripts are kept (audio files
            directly in the folder that the corpus does not list join as plain files).
        references: a folder whose audio files are one-clip voices and whose sub-folders are
            voices of all the audio inside them; voice ids are "ref:<file stem or folder name>".
        texts: transcripts of the sources (see `read_texts`); they take precedence over a
            corpus's own. Sources with no text get source_text "".
        trials: how many (source, voice) pairs to draw without replacement, deterministic for
            `seed`; None takes the full cross product. Trials keep the cross product's order.
        seed: seeds the draw.
        max_references: use at most this many clips of a voice (the first in sorted order).

    Raises:
        ProtocolError (a ValueError): a folder is missing or holds no audio, there is no
        reference voice, the texts file cannot be parsed (naming the line), or `trials` is
        more than the pairs there are.
    """
    if trials is not None and trials < 1:
        raise ProtocolError(f"trials must be at least 1, got {trials}; leave it out for every (source, voice) pair")
    if max_references is not None and max_references < 1:
        raise ProtocolError(f"max_references must be at least 1, got {max_references}")
    source_root, reference_root = _folder(sources, "sources"), _folder(references, "references")
    utts = _source_utterances(source_root)
    voices = _reference_voices(reference_root, max_references)
    table = read_texts(texts) if texts is not None else {}
    source_texts = [_text_of(u, source_root, table) for u in utts]
    if table and not any(name in table for u in utts for name in _names(u.path, source_root)):
        raise ProtocolError(f"none of the {len(table)} names in {texts} is a source in {source_root} (the"
                            f" texts file names e.g. {next(iter(table))!r}); names are file stems or file names"
                            f" such as {utts[0].path.stem!r} or {utts[0].path.name!r}")

    pairs, same_speaker = [], 0
    for i, utt in enumerate(utts):
        for voice in voices:
            if _same_speaker(utt, voice):
                same_speaker += 1
            else:
                pairs.append((i, voice))
    if not pairs:
        raise ProtocolError(f"no (source, voice) pair is left: all {same_speaker} pairs of {len(utts)} source(s)"
                            f" and {len(voices)} voice(s) are the same speaker; give references of other speakers")
    if trials is not None and trials > len(pairs):
        left_out = f" ({same_speaker} same-speaker pairs left out)" if same_speaker else ""
        raise ProtocolError(f"asked for {trials} trials but {len(utts)} source(s) x {len(voices)} reference voice(s)"
                            f" give only {len(pairs)} pairs{left_out}; ask for fewer trials, or leave --trials out"
                            " for all of them")
    if trials is not None:
        rng = random.Random(f"voicelab-folder-protocol-{seed}")
        pairs = [pairs[i] for i in sorted(rng.sample(range(len(pairs)), trials))]

    source_gender = _speaker_genders(_group((u.speaker, u) for u in utts), {})
    voice_gender = _speaker_genders(_group((v.name, Utterance(c, v.name, None, None, REFERENCES))
                                           for v in voices for c in v.clips), {})
    width = len(str(len(pairs)))
    chosen = []
    for n, (i, voice) in enumerate(pairs, 1):
        utt = utts[i]
        chosen.append(Trial(f"t{n:0{width}d}", utt.path, utt.speaker, VOICE_PREFIX + voice.name, voice.clips,
                            source_texts[i], None, utt.corpus, REFERENCES, utt.extra.get("sentence_id"),
                            source_gender[utt.speaker], voice_gender[voice.name]))

    metadata = {
        "builder": "build_folder_protocol", "created_by": f"voicelab {__version__}", "seed": seed,
        "trials": len(chosen),
        "options": {"trials": trials, "max_references": max_references},
        "corpora": [str(source_root), str(reference_root)],
        "corpus_names": sorted({u.corpus for u in utts} | {REFERENCES}),
        "texts": os.path.abspath(texts) if texts is not None else None,
        "speakers": len({t.source_speaker for t in chosen} | {t.target_speaker for t in chosen}),
        "sources": len({t.source_path for t in chosen}), "voices": len({t.target_speaker for t in chosen}),
        "same_speaker_pairs_skipped": same_speaker,
        "parallel_trials": 0,
        "wer_reference": wer_reference_of(chosen),
    }
    return Protocol(chosen, metadata)


def read_texts(path: str | os.PathLike) -> dict[str, str]:
    """Source name -> transcript from a texts file.

    One `name<sep>text` line per source, the separator a tab, "|" or "," (taken from the first
    line; CSV quoting is understood and a text's own commas are kept). Three tab- or
    pipe-separated columns are read as LJSpeech's metadata.csv (ID|transcription|normalised
    transcription): the third, normalised, column where it is not empty, else the second. The
    name is a file stem or file name ("LJ001-0001", "a.wav"). A first line whose name is a
    column title (id, name, file, file_name, path, ...) is a header and skipped; empty lines
    are skipped; runs of white space in a text become one space.

    Raises:
        ProtocolError: the file is missing or unreadable, a line has no separator or too many
            columns, a name is empty or given twice (each naming the line).
    """
    path = Path(path)
    if not path.is_file():
        raise ProtocolError(f"texts file {path} does not exist; give a file of name<TAB>text lines")
    try:
        content = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise ProtocolError(f"cannot read texts file {path}: {err}; it must be UTF-8 text") from None
    lines = [(n, line) for n, line in enumerate(content.splitlines(), 1) if line.strip()]
    if not lines:
        raise ProtocolError(f"texts file {path} is empty; give one name<TAB>text line per source")
    first = lines[0][1]
    sep = "\t" if "\t" in first else "|" if "|" in first else "," if "," in first else None
    if sep is None:
        raise ProtocolError(f"{path} line {lines[0][0]}: no separator in {first[:80]!r}; write name<TAB>text"
                            " (or name|text, or name,text) on each line")
    table: dict[str, str] = {}
    where: dict[str, int] = {}
    for index, (number, line) in enumerate(lines):
        fields = _fields(line, sep, path, number)
        if len(fields) < 2:
            raise ProtocolError(f"{path} line {number}: expected name{_SEP_NAMES[sep]}text (the separator of line"
                                f" {lines[0][0]}), got {line[:80]!r}")
        name = fields[0].strip()
        if index == 0 and name.lower() in _HEADER_NAMES:
            continue
        if sep == ",":
            text = ",".join(fields[1:])
        elif len(fields) <= 3:
            text = (fields[2].strip() or fields[1]) if len(fields) == 3 else fields[1]
        else:
            raise ProtocolError(f"{path} line {number}: {len(fields)} columns; expected name{_SEP_NAMES[sep]}text"
                                f" or LJSpeech's ID|transcription|normalised transcription")
        if not name:
            raise ProtocolError(f"{path} line {number}: the name (first column) is empty")
        if name in where:
            raise ProtocolError(f"{path} line {number}: {name!r} was already given on line {where[name]};"
                                " give each source one line")
        where[name] = number
        table[name] = " ".join(text.split())
    if not table:
        raise ProtocolError(f"texts file {path} has a header but no lines of name and text")
    return table


_SEP_NAMES = {"\t": "<TAB>", "|": "|", ",": ","}


def _fields(line: str, sep: str, path: Path, number: int) -> list[str]:
    if sep != ",":
        return line.split(sep)
    try:
        return next(csv.reader(io.StringIO(line)))
    except (csv.Error, StopIteration) as err:
        raise ProtocolError(f"{path} line {number}: not a readable CSV line ({err}): {line[:80]!r}") from None


def _folder(path: str | os.PathLike, role: str) -> Path:
    folder = Path(os.path.abspath(Path(path).expanduser()))
    wanted = ("a folder of audio files or a corpus folder" if role == "sources" else
              "a folder with one audio file or one sub-folder of clips per voice")
    if not folder.exists():
        raise ProtocolError(f"{role} folder {folder} does not exist; give {wanted}")
    if not folder.is_dir():
        raise ProtocolError(f"{role} {folder} is not a folder; give {wanted}")
    return folder


def _audio_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if is_audio_file(p))


def _source_utterances(folder: Path) -> list[Utterance]:
    """A corpus's utterances (plus loose top-level files it leaves out), else every audio file."""
    audio = _audio_under(folder)
    if not audio:
        raise ProtocolError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) in the sources folder {folder}"
                            " or below it")
    corpus: list[Utterance] = []
    layout = detect_layout(folder, quiet=True)
    if layout is not None:
        try:
            corpus = read_corpus(folder)
        except VoicelabError as err:
            if layout in ("manifest", "ljspeech"):  # its own file says what it is: a broken one is an error
                raise ProtocolError(f"the sources folder {folder} holds a {layout} corpus that cannot be read:"
                                    f" {err}") from None
            corpus = []  # the file names only looked like a corpus: take the files as they are
    corpus = [Utterance(Path(os.path.abspath(u.path)), u.speaker, u.text, u.alignment, u.corpus, u.extra)
              for u in corpus]
    used = {u.path for u in corpus}
    plain = [p for p in audio if p not in used and (not corpus or p.parent == folder)]
    return corpus + _plain_sources(plain, folder)


def _plain_sources(files: list[Path], folder: Path) -> list[Utterance]:
    """Each file its own speaker: "source:<stem>", or its relative path where stems repeat."""
    stems = Counter(p.stem for p in files)
    no_suffix = Counter(p.relative_to(folder).with_suffix("").as_posix() for p in files)
    utts = []
    for p in files:
        relative = p.relative_to(folder)
        name = p.stem if stems[p.stem] == 1 else relative.with_suffix("").as_posix() \
            if no_suffix[relative.with_suffix("").as_posix()] == 1 else relative.as_posix()
        utts.append(Utterance(p, SOURCE_PREFIX + name, None, None, PLAIN_SOURCES))
    return utts


def _reference_voices(folder: Path, max_references: int | None) -> list[_Voice]:
    voices: list[_Voice] = []
    origin: dict[str, str] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if is_audio_file(entry):
            name, clips = entry.stem, [entry]
        elif entry.is_dir():
            name, clips = entry.name, _audio_under(entry)[:max_references]
        else:
            continue
        if not clips:
            continue  # a sub-folder without audio is not a voice
        if name in origin:
            raise ProtocolError(f"two reference voices in {folder} would both be {VOICE_PREFIX}{name}"
                                f" ({origin[name]} and {entry.name}); rename one of them")
        origin[name] = entry.name + ("/" if entry.is_dir() else "")
        voices.append(_Voice(name, tuple(clips)))
    if not voices:
        raise ProtocolError(f"no reference voice in {folder}: put each voice there as one audio file"
                            f" ({', '.join(AUDIO_EXTENSIONS)}) or as a sub-folder of its clips")
    return voices


def _names(path: Path, folder: Path) -> list[str]:
    """The names a texts file may give a source by: relative path, with and without suffix, file name, stem."""
    relative = path.relative_to(folder) if path.is_relative_to(folder) else Path(path.name)
    return list(dict.fromkeys([relative.as_posix(), relative.with_suffix("").as_posix(), path.name, path.stem]))


def _text_of(utt: Utterance, folder: Path, table: dict[str, str]) -> str:
    for name in _names(utt.path, folder):
        if table.get(name):  # an empty text in the file leaves the corpus's own
            return table[name]
    return utt.text or ""


def _same_speaker(utt: Utterance, voice: _Voice) -> bool:
    own = utt.speaker[len(SOURCE_PREFIX):] if utt.corpus == PLAIN_SOURCES else utt.speaker.rsplit(":", 1)[-1]
    if own == voice.name:
        return True
    real = os.path.realpath(utt.path)
    return any(os.path.realpath(clip) == real for clip in voice.clips)


def _group(items) -> dict[str, list[Utterance]]:
    groups: dict[str, list[Utterance]] = defaultdict(list)
    for key, utt in items:
        groups[key].append(utt)
    return groups

"""Evaluation protocols: which source utterance is converted into which target voice.

    from vc.data import read_corpus
    from eval.protocol import Protocol, build_protocol
    protocol = build_protocol(read_corpus("data/corpus"), trials=200, seed=0, unseen_only=True)
    protocol.save("protocols/synth-unseen.json")        # or .csv
    for trial in Protocol.load("protocols/synth-unseen.json"):
        converter.convert(trial.source_path, list(trial.reference_paths))

A trial names a source utterance (speaker, transcript), a target speaker with 1..k reference
clips, and, where the corpus has one, the target's own reading of the same sentence (for MCD
with DTW). Paths are stored relative to the protocol file's folder, so a protocol kept beside
(or inside) its corpus still works after both are moved together.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import re
from collections import defaultdict
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from vc import __version__
from vc.data import Utterance, read_corpora
from vc.errors import VoicelabError
from vc.hub import write_text_atomically

FORMAT = "voicelab-protocol"
FORMAT_VERSION = 1
_CSV_META_PREFIX = "# voicelab-protocol "  # first CSV line: the metadata as JSON
_REQUIRED = ("trial_id", "source_path", "source_speaker", "target_speaker", "reference_paths")
_PATH_KEYS = ("corpora", "root", "alignments", "texts")  # metadata entries holding paths (stored portable as well)
GENDER_SOURCES = ("LibriSpeech SPEAKERS.TXT, LibriTTS speakers.tsv or VCTK speaker-info.txt beside the audio,"
                  " a gender/sex column in a manifest, or an explicit genders mapping")


class ProtocolError(VoicelabError, ValueError):
    """A protocol cannot be built from the data given, or a protocol file cannot be used."""


@dataclass(frozen=True)
class Trial:
    """One conversion to run and score.

    Args:
        trial_id: unique within its protocol, e.g. "t0007".
        source_path: the utterance to convert.
        source_speaker, target_speaker: speaker ids as the corpus reader gave them; never equal.
        reference_paths: 1..k clips of the target speaker; never the source utterance, never
            the parallel utterance (nor any other reading of the source's sentence).
        source_text: the source transcript, "" where the corpus has none.
        parallel_path: the target speaker reading the source's sentence, or None.
        source_corpus, target_corpus: corpus names (`Utterance.corpus`).
        sentence_id: the source's sentence id where the corpus gives one.
        source_gender, target_gender: "F"/"M" (or the corpus's label) where known.
        parallel_text: the parallel utterance's transcript as its corpus gives it, "" where
            unknown (no parallel utterance, or a hand-written protocol that only names it).
    """

    trial_id: str
    source_path: Path
    source_speaker: str
    target_speaker: str
    reference_paths: tuple[Path, ...]
    source_text: str = ""
    parallel_path: Path | None = None
    source_corpus: str = ""
    target_corpus: str = ""
    sentence_id: str | None = None
    source_gender: str | None = None
    target_gender: str | None = None
    parallel_text: str = ""

    def __post_init__(self):
        # Normalise so a trial read back from JSON or CSV equals the one that was saved.
        put = lambda name, value: object.__setattr__(self, name, value)
        put("source_path", Path(self.source_path))
        put("reference_paths", tuple(Path(p) for p in self.reference_paths))
        put("parallel_path", Path(self.parallel_path) if self.parallel_path else None)
        for name in ("trial_id", "source_speaker", "target_speaker"):
            put(name, str(getattr(self, name)))
        for name in ("source_text", "source_corpus", "target_corpus", "parallel_text"):
            put(name, str(getattr(self, name) or ""))
        for name in ("sentence_id", "source_gender", "target_gender"):
            value = getattr(self, name)
            put(name, str(value) if value not in (None, "") else None)

    @property
    def audio_paths(self) -> dict[str, Path]:
        """Every file the trial needs, by role ("source", "reference 1", ..., "parallel")."""
        paths = {"source": self.source_path}
        paths.update({f"reference {i}": p for i, p in enumerate(self.reference_paths, 1)})
        if self.parallel_path is not None:
            paths["parallel"] = self.parallel_path
        return paths


@dataclass
class Protocol:
    """A list of trials plus how they were made (builder, seed, options, corpora, version).

    Metadata every builder writes: "builder", "created_by", "seed", "trials", "options",
    "corpora" (the folders read, stored relative to the protocol file like the trials' paths),
    "speakers" and "parallel_trials". Optional:

    - "wer_reference": what a source's WER/CER is measured against. "transcript" (the default
      when absent): the trial's `source_text`, and trials without one have no WER. "asr-of-source":
      no source has a transcript; each is scored against the ASR transcript of the unconverted
      source. "mixed": `source_text` where a trial has one, else the ASR of its source.
    """

    trials: list[Trial]
    metadata: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.trials)

    def __iter__(self) -> Iterator[Trial]:
        return iter(self.trials)

    def save(self, path: str | os.PathLike) -> Path:
        """Write as .json or .csv (by suffix); paths relative to the file's folder where possible."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".json", ".csv"):
            raise ProtocolError(f"cannot write protocol {path}: use a .json or .csv file name")
        folder = Path(os.path.abspath(path)).parent
        rows = [_row_of(t, folder) for t in self.trials]
        meta = map_paths(self.metadata, lambda p: _portable(p, folder))
        if suffix == ".json":
            text = json.dumps({"format": FORMAT, "version": FORMAT_VERSION, "metadata": meta, "trials": rows},
                              indent=1, ensure_ascii=False) + "\n"
        else:
            if any("|" in p for row in rows for p in row["reference_paths"]):
                raise ProtocolError(f"cannot write {path}: a reference path contains '|', the CSV separator; save as .json")
            buffer = io.StringIO()
            buffer.write(_CSV_META_PREFIX + json.dumps(meta, ensure_ascii=False) + "\n")
            writer = csv.DictWriter(buffer, fieldnames=[f.name for f in fields(Trial)], lineterminator="\n")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: "|".join(v) if k == "reference_paths" else ("" if v is None else v)
                                 for k, v in row.items()})
            text = buffer.getvalue()
        return write_text_atomically(path, text)  # a reader never sees half a file

    @classmethod
    def load(cls, path: str | os.PathLike, check_files: bool = True) -> "Protocol":
        """Read a .json or .csv protocol; relative paths resolve against the file's folder.

        Raises ProtocolError (a ValueError) naming the file and the problem: unreadable or
        malformed content, a missing column or field, an inconsistent trial, or (with
        check_files) an audio file that no longer exists.
        """
        path = Path(path)
        if not path.is_file():
            raise ProtocolError(f"protocol {path} does not exist")
        suffix = path.suffix.lower()
        if suffix not in (".json", ".csv"):
            raise ProtocolError(f"protocol {path} has suffix {suffix!r}; protocols are .json or .csv files")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise ProtocolError(f"cannot read protocol {path}: {err}") from None
        meta, rows = (_json_rows if suffix == ".json" else _csv_rows)(path, text)
        folder = Path(os.path.abspath(path)).parent
        trials = [_trial_of(row, folder, f"{path}: trial {i}") for i, row in enumerate(rows, 1)]
        _check_trials(path, folder, trials, check_files)
        return cls(trials, map_paths(meta, lambda p: str(_resolve(p, folder))))


# ------------------------------------------------------------------------------------ building


def build_protocol(utterances: Iterable[Utterance], trials: int, seed: int, references_per_target: int = 2,
                   unseen_only: bool = False, unseen_speakers: Iterable[str] | None = None,
                   cross_gender: bool = False, require_text: bool = False,
                   genders: Mapping[str, str] | None = None,
                   corpus_paths: Sequence[str | os.PathLike] | None = None) -> Protocol:
    """Choose `trials` conversion trials from any utterances `vc.data` reads.

    Deterministic for a seed. Trials walk round robin over shuffled (source, target) speaker
    pairs, in rounds where every speaker is source once and target once, so each ordered pair
    is used once before any is used twice and no speaker dominates. Within a pair, a source
    whose sentence the target also reads (shared manifest `sentence_id`, or the same
    transcript where there is no sentence id, as in VCTK) is preferred and that reading
    becomes `parallel_path`; then the least-used source and references are taken.

    Args:
        references_per_target: clips of the target per trial (k).
        unseen_only: keep only speakers of a test split (manifest `split == "test"`) or named
            in `unseen_speakers` (full ids like "vctk:p225" or the corpus's own "p225").
        cross_gender: keep only pairs whose genders differ; needs every speaker's gender
            (see GENDER_SOURCES).
        require_text: sources must have a transcript.
        genders: speaker id -> gender, overriding what the corpus says.
        corpus_paths: recorded in the metadata (default: each corpus's common folder).

    Raises:
        ProtocolError (a ValueError) when the data cannot give what is asked, saying what was
        found and what is needed.
    """
    if trials < 1:
        raise ProtocolError(f"trials must be at least 1, got {trials}")
    if references_per_target < 1:
        raise ProtocolError(f"references_per_target must be at least 1, got {references_per_target}")
    k = references_per_target
    unseen_speakers = sorted(set(unseen_speakers)) if unseen_speakers else []
    unique = {Path(os.path.abspath(u.path)): u for u in utterances}  # one record per file
    utts = [Utterance(p, u.speaker, u.text, u.alignment, u.corpus, u.extra) for p, u in sorted(unique.items())]
    if not utts:
        raise ProtocolError("no utterances given; a protocol needs at least two speakers with audio")
    by_speaker: dict[str, list[Utterance]] = defaultdict(list)
    for utt in utts:
        by_speaker[utt.speaker].append(utt)
    if unseen_only:
        by_speaker = _unseen(by_speaker, set(unseen_speakers))
    if len(by_speaker) < 2:
        raise ProtocolError(f"found {len(by_speaker)} speaker(s) ({', '.join(sorted(by_speaker)) or 'none'})"
                            f"{' in a test split' if unseen_only else ''}; a protocol needs at least 2")
    speakers = sorted(by_speaker)
    gender = _speaker_genders(by_speaker, genders or {})
    if cross_gender:
        _require_genders(by_speaker, gender)

    key_of = {u.path: _sentence_key(u) for u in utts}
    readings: dict[str, dict[tuple, list[Utterance]]] = {s: defaultdict(list) for s in speakers}
    for s in speakers:
        for u in by_speaker[s]:
            if key_of[u.path] is not None:
                readings[s][key_of[u.path]].append(u)
    rng = random.Random(f"voicelab-protocol-{seed}")
    shuffled = [u.path for u in utts]
    rng.shuffle(shuffled)
    rank = {p: i for i, p in enumerate(shuffled)}  # seeded tie-break between equally used files
    use: dict[Path, int] = defaultdict(int)
    used_pairs: dict[tuple[str, str], set[Path]] = defaultdict(set)
    exhausted: set[tuple[str, str]] = set()

    def same_sentence(u: Utterance, t: str) -> list[Utterance]:
        key = key_of[u.path]
        return readings[t].get(key, []) if key is not None else []

    chosen: list[Trial] = []
    while len(chosen) < trials:
        added = False
        for s, t in _pair_rounds(speakers, rng):
            if (s, t) in exhausted or (cross_gender and gender[s] == gender[t]):
                continue
            options = [u for u in by_speaker[s] if u.path not in used_pairs[(s, t)] and (u.text or not require_text)
                       and len(by_speaker[t]) - len(same_sentence(u, t)) >= k]
            if not options:
                exhausted.add((s, t))
                continue
            source = min(options, key=lambda u: (not same_sentence(u, t), use[u.path], rank[u.path]))
            parallel = same_sentence(source, t)
            excluded = {source.path, *(u.path for u in parallel)}
            pool = [u for u in by_speaker[t] if u.path not in excluded]
            refs = sorted(pool, key=lambda u: (use[u.path], rank[u.path]))[:k]
            for u in [source, *refs]:
                use[u.path] += 1
            used_pairs[(s, t)].add(source.path)
            chosen.append(Trial(
                f"t{len(chosen) + 1:0{len(str(trials))}d}", source.path, s, t, tuple(u.path for u in refs),
                source.text or "", parallel[0].path if parallel else None, source.corpus, by_speaker[t][0].corpus,
                source.extra.get("sentence_id"), gender[s], gender[t], (parallel[0].text or "") if parallel else ""))
            added = True
            if len(chosen) == trials:
                break
        if not added:
            raise ProtocolError(_shortfall(trials, len(chosen), by_speaker, k, cross_gender, require_text, gender))

    if corpus_paths is None:
        roots = defaultdict(list)
        for u in utts:
            roots[u.corpus].append(str(u.path.parent))
        corpus_paths = [os.path.commonpath(paths) for _, paths in sorted(roots.items())]
    metadata = {
        "builder": "build_protocol", "created_by": f"voicelab {__version__}", "seed": seed, "trials": len(chosen),
        "options": {"references_per_target": k, "unseen_only": unseen_only,
                    "unseen_speakers": unseen_speakers or None,
                    "cross_gender": cross_gender, "require_text": require_text},
        "corpora": [os.path.abspath(p) for p in corpus_paths],
        "corpus_names": sorted({u.corpus for u in utts}),
        "speakers": len(speakers),
        "parallel_trials": sum(t.parallel_path is not None for t in chosen),
    }
    return Protocol(chosen, metadata)


REAL_SPEECH_CORPORA = ("librispeech", "vctk", "ljspeech")  # what build_real_speech_protocol can use
REAL_SPEECH_DEFAULT = ("librispeech", "vctk")  # the held-out ones: LJSpeech is also training data


def build_real_speech_protocol(root: str | os.PathLike, trials: int, seed: int, references_per_target: int = 2,
                               cross_gender: bool = False, require_text: bool = False,
                               corpora: Sequence[str] = REAL_SPEECH_DEFAULT,
                               genders: Mapping[str, str] | None = None) -> Protocol:
    """A protocol over the held-out speakers of a `../shared/real-speech/`-style folder.

    Held out: LibriSpeech `test-*` and `dev-*` subsets (never `train-*`) and all of `vctk/`.
    VCTK transcripts (txt/ or transcripts.tsv) become source texts, as do LibriSpeech
    `*.trans.txt` where present; VCTK utterances with the same transcript are parallel.
    Speaker ids are prefixed with the corpus name ("librispeech:367", "vctk:p225").

    `ljspeech/` (one female reader, "ljspeech:LJ", normalised transcripts) is used only when
    named in `corpora`: it is not in the default because LJSpeech is also training data (vocoders,
    text-to-mel), so it is not held out and its figures are not zero-shot ones. The metadata
    lists it under "not_held_out".

    Args:
        corpora: which of "librispeech", "vctk" (the default pair) and "ljspeech" to use.
        others: as for `build_protocol`.
    """
    root = Path(root)
    unknown = sorted(set(corpora) - set(REAL_SPEECH_CORPORA))
    if unknown:
        raise ProtocolError(f"unknown corpora {unknown}; a real-speech folder offers {', '.join(REAL_SPEECH_CORPORA)}")
    if not root.is_dir():
        raise ProtocolError(f"{root} is not a folder; give a real-speech folder holding librispeech/, vctk/"
                            " and/or ljspeech/")
    sources: list[Path] = []
    names: list[str] = []
    libri = root / "librispeech"
    if "librispeech" in corpora and libri.is_dir():
        held = sorted(d for d in libri.iterdir() if d.is_dir() and d.name.startswith(("test-", "dev-")))
        sources += held
        names += ["librispeech" if len(held) == 1 else f"librispeech-{d.name}" for d in held]
    if "vctk" in corpora and (root / "vctk").is_dir():
        sources.append(root / "vctk")
        names.append("vctk")
    held_out = names[:]
    if "ljspeech" in corpora and (root / "ljspeech").is_dir():
        sources.append(root / "ljspeech")
        names.append("ljspeech")
    if not sources:
        raise ProtocolError(f"{root} has none of the speakers of {list(corpora)}: looked for"
                            " librispeech/test-*, librispeech/dev-*, vctk/ and ljspeech/")
    protocol = build_protocol(read_corpora(sources, names), trials, seed, references_per_target,
                              cross_gender=cross_gender, require_text=require_text, genders=genders,
                              corpus_paths=sources)
    protocol.metadata.update(builder="build_real_speech_protocol", root=os.path.abspath(root), held_out=held_out,
                             wer_reference=wer_reference_of(protocol.trials))
    if len(names) > len(held_out):
        protocol.metadata["not_held_out"] = names[len(held_out):]
    return protocol


def wer_reference_of(trials: Sequence[Trial]) -> str:
    """The protocol's "wer_reference": "transcript" when every source has one, "asr-of-source"
    when none has, else "mixed" (the untranscribed ones are scored against the recogniser's
    transcript of the unconverted source, so their WER counts too)."""
    with_text = sum(bool(t.source_text) for t in trials)
    return "transcript" if with_text == len(trials) else "asr-of-source" if not with_text else "mixed"


def _pair_rounds(speakers: list[str], rng: random.Random) -> Iterator[tuple[str, str]]:
    """Every ordered pair once, in rounds of a shuffled cyclic shift (each speaker is source
    once and target once per round), rounds and pairs within a round in seeded order."""
    order = speakers[:]
    rng.shuffle(order)
    shifts = list(range(1, len(order)))
    rng.shuffle(shifts)
    for shift in shifts:
        pairs = [(order[i], order[(i + shift) % len(order)]) for i in range(len(order))]
        rng.shuffle(pairs)
        yield from pairs


def _sentence_key(utt: Utterance) -> tuple | None:
    """What makes two readings the same sentence: the corpus's sentence id, else the transcript."""
    sentence_id = utt.extra.get("sentence_id")
    if sentence_id not in (None, ""):
        return ("id", utt.corpus, str(sentence_id))  # ids are only comparable within a corpus
    words = sentence_words(utt.text or "")
    return ("text", words) if words else None


def sentence_words(text: str) -> str:
    """A transcript reduced to what says which sentence it is: lower case, letters, digits and
    apostrophes, single spaces ("Mr. Smith's  car!" -> "mr smith's car")."""
    return " ".join(re.sub(r"[^\w']|_", " ", text.lower()).split())


def same_sentence(a: str, b: str) -> bool:
    """Whether two transcripts are the same sentence after `sentence_words` (never for empty ones)."""
    words = sentence_words(a)
    return bool(words) and words == sentence_words(b)


def _raw_id(speaker: str, corpus: str) -> str:
    """The corpus's own id of a speaker that `read_corpora` prefixed with "NAME:"."""
    return speaker[len(corpus) + 1:] if speaker.startswith(corpus + ":") else speaker


def _unseen(by_speaker: dict[str, list[Utterance]], named: set[str]) -> dict[str, list[Utterance]]:
    ids = {s: {s, _raw_id(s, utts[0].corpus)} for s, utts in by_speaker.items()}  # full and corpus-own id
    found = {s for s, names in ids.items() if names & named}
    missing = named - set().union(*ids.values())
    if missing:
        raise ProtocolError(f"unseen speakers {sorted(missing)} are not in the corpus"
                            f" (its speakers include {', '.join(sorted(by_speaker)[:5])})")
    test = {s for s, utts in by_speaker.items() if any(str(u.extra.get("split", "")).lower() == "test" for u in utts)}
    if not found | test:
        raise ProtocolError(f"unseen_only found no unseen speaker among {len(by_speaker)}: none is in a test split"
                            " (manifest split == 'test') and none was named as unseen")
    return {s: by_speaker[s] for s in sorted(found | test)}


def _shortfall(trials: int, made: int, by_speaker: dict[str, list[Utterance]], k: int, cross_gender: bool,
               require_text: bool, gender: dict[str, str | None]) -> str:
    """Why no further distinct trial exists: what was found against what is needed."""
    counts = sorted((len(u) for u in by_speaker.values()), reverse=True)
    found = f"{len(by_speaker)} speakers with {sum(counts)} utterances (at most {counts[0]} per speaker)"
    if cross_gender and len(set(gender.values())) < 2:
        return f"cross_gender needs speakers of two genders; all {found} are {next(iter(gender.values()))}"
    if require_text and not any(u.text for utts in by_speaker.values() for u in utts):
        return f"require_text needs transcribed sources; none of the {found} has a transcript"
    if made == 0:
        return (f"references_per_target={k} needs target speakers with at least {k} utterances besides any"
                f" reading of the source's sentence; found {found}")
    return (f"asked for {trials} trials but only {made} distinct (source utterance, target speaker) trials exist"
            f" in {found}{' across genders' if cross_gender else ''} with {k} references each;"
            " ask for fewer trials or references, or add speakers")


# ------------------------------------------------------------------------------------- genders


def _speaker_genders(by_speaker: dict[str, list[Utterance]], given: Mapping[str, str]) -> dict[str, str | None]:
    """speaker -> gender from (in order) `given`, a manifest gender/sex field, or a gender file
    of LibriSpeech, LibriTTS or VCTK in one of the audio's parent folders."""
    tables: dict[Path, dict[str, str]] = {}  # folder -> genders its files list; read once per call
    result = {}
    for speaker, utts in by_speaker.items():
        raw = _raw_id(speaker, utts[0].corpus)
        value = given.get(speaker) or given.get(raw)
        value = value or next((u.extra.get(f) for u in utts for f in ("gender", "sex") if u.extra.get(f)), None)
        for folder in list(utts[0].path.parents)[:5]:  # LibriSpeech: ROOT/subset/SPK/CHAPTER/file
            if value:
                break
            if folder not in tables:
                tables[folder] = _gender_table(folder)
            value = tables[folder].get(raw)
        result[speaker] = _normal_gender(value)
    return result


def _gender_table(folder: Path) -> dict[str, str]:
    table: dict[str, str] = {}
    try:
        if (folder / "SPEAKERS.TXT").is_file():  # LibriSpeech: "ID | SEX | SUBSET | MINUTES | NAME"
            for line in (folder / "SPEAKERS.TXT").read_text(encoding="utf-8", errors="replace").splitlines():
                parts = [p.strip() for p in line.split("|")]
                if not line.startswith(";") and len(parts) > 1 and parts[0]:
                    table[parts[0]] = parts[1]
        if (folder / "speakers.tsv").is_file():  # LibriTTS: READER, GENDER, SUBSET, NAME
            for line in (folder / "speakers.tsv").read_text(encoding="utf-8", errors="replace").splitlines():
                parts = line.split("\t")
                if len(parts) > 1 and parts[0].strip().isdigit():
                    table[parts[0].strip()] = parts[1].strip()
        if (folder / "speaker-info.txt").is_file():  # VCTK: "ID AGE GENDER ACCENTS REGION", ID 225 or p225
            for line in (folder / "speaker-info.txt").read_text(encoding="utf-8", errors="replace").splitlines():
                parts = line.split()
                if len(parts) > 2 and parts[0] != "ID":
                    table[f"p{parts[0]}" if parts[0].isdigit() else parts[0]] = parts[2]
    except OSError:
        return table  # an unreadable gender file just means genders stay unknown
    return table


def _normal_gender(value: Any) -> str | None:
    text = str(value or "").strip().lower()
    return {"f": "F", "female": "F", "m": "M", "male": "M"}.get(text, text.upper() or None)


def _require_genders(by_speaker: dict[str, list[Utterance]], gender: dict[str, str | None]) -> None:
    missing = sorted(s for s, g in gender.items() if g is None)
    if missing:
        corpora = sorted({by_speaker[s][0].corpus for s in missing})
        raise ProtocolError(
            f"cross_gender needs speaker genders, but none is known for {len(missing)} speaker(s) of corpus"
            f" {', '.join(corpora)} (e.g. {', '.join(missing[:3])}). Genders come from {GENDER_SOURCES};"
            " LibriSpeech/LibriTTS and full VCTK releases provide them, synthetic corpora do not")


# ---------------------------------------------------------------------------------- file format


def _portable(path: str | os.PathLike, folder: Path) -> str:
    """Relative to `folder` when the two share more than the file-system root, else absolute."""
    path = os.path.abspath(path)
    try:
        common = os.path.commonpath([path, str(folder)])
    except ValueError:  # another drive (Windows)
        return Path(path).as_posix()
    if Path(common).parent == Path(common):
        return Path(path).as_posix()
    return Path(os.path.relpath(path, folder)).as_posix()


def _resolve(text: str, folder: Path) -> Path:
    path = Path(text)
    return Path(os.path.normpath(path if path.is_absolute() else folder / path))


def map_paths(metadata: Mapping[str, Any], convert, keys: Sequence[str] = _PATH_KEYS) -> dict[str, Any]:
    """A JSON-clean copy of metadata with the path entries named by `keys` passed through
    `convert` (one path or a list of them)."""
    out = json.loads(json.dumps(dict(metadata), default=str))  # a JSON-clean deep copy
    for key in keys:
        if isinstance(out.get(key), str):
            out[key] = convert(out[key])
        elif isinstance(out.get(key), list):
            out[key] = [convert(p) for p in out[key]]
    return out


def _row_of(trial: Trial, folder: Path) -> dict[str, Any]:
    row = {f.name: getattr(trial, f.name) for f in fields(Trial)}
    row["source_path"] = _portable(trial.source_path, folder)
    row["reference_paths"] = [_portable(p, folder) for p in trial.reference_paths]
    row["parallel_path"] = _portable(trial.parallel_path, folder) if trial.parallel_path else None
    return row


def _trial_of(row: Mapping[str, Any], folder: Path, where: str) -> Trial:
    missing = [key for key in _REQUIRED if row.get(key) in (None, "", [])]
    if missing:
        raise ProtocolError(f"{where}: missing {', '.join(missing)}; every trial needs {', '.join(_REQUIRED)}")
    refs = row["reference_paths"]
    refs = refs.split("|") if isinstance(refs, str) else refs
    if not isinstance(refs, list) or not all(isinstance(p, str) and p for p in refs):
        raise ProtocolError(f"{where}: reference_paths must be a list of paths (in CSV joined with '|'), got {refs!r}")
    known = {f.name for f in fields(Trial)}
    values = {k: v for k, v in row.items() if k in known}
    values.update(source_path=_resolve(str(row["source_path"]), folder),
                  reference_paths=tuple(_resolve(p, folder) for p in refs),
                  parallel_path=_resolve(str(row["parallel_path"]), folder) if row.get("parallel_path") else None)
    return Trial(**values)


def _check_trials(path: Path, folder: Path, trials: list[Trial], check_files: bool) -> None:
    seen: set[str] = set()
    for trial in trials:
        where = f"{path}: trial {trial.trial_id}"
        if trial.trial_id in seen:
            raise ProtocolError(f"{where}: the trial id appears twice; trial ids must be unique")
        seen.add(trial.trial_id)
        if trial.source_speaker == trial.target_speaker:
            raise ProtocolError(f"{where}: source and target speaker are both {trial.source_speaker!r}")
        if trial.source_path in trial.reference_paths or (trial.parallel_path in trial.reference_paths):
            raise ProtocolError(f"{where}: a reference clip is the source or the parallel utterance")
        for role, audio in trial.audio_paths.items() if check_files else ():
            if not audio.is_file():
                raise ProtocolError(f"{where}: {role} audio file {audio} does not exist (relative paths are read"
                                    f" from {folder}; move a protocol together with its corpus)")


def _json_rows(path: Path, text: str) -> tuple[dict, list[dict]]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise ProtocolError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("trials"), list):
        raise ProtocolError(f"{path}: expected a JSON object with a 'trials' list (format {FORMAT!r})")
    version = doc.get("version", FORMAT_VERSION)
    if doc.get("format", FORMAT) != FORMAT or not isinstance(version, int) or version > FORMAT_VERSION:
        raise ProtocolError(f"{path}: format {doc.get('format')!r} version {doc.get('version')} is not"
                            f" {FORMAT!r} version <= {FORMAT_VERSION}")
    if not all(isinstance(row, dict) for row in doc["trials"]):
        raise ProtocolError(f"{path}: every entry of 'trials' must be a JSON object")
    meta = doc.get("metadata") or {}
    if not isinstance(meta, dict):
        raise ProtocolError(f"{path}: 'metadata' must be a JSON object")
    return meta, doc["trials"]


def _csv_rows(path: Path, text: str) -> tuple[dict, list[dict]]:
    meta: dict = {}
    if text.startswith(_CSV_META_PREFIX):  # optional: a hand-written CSV has no metadata line
        first, _, text = text.partition("\n")
        try:
            meta = json.loads(first[len(_CSV_META_PREFIX):])
        except json.JSONDecodeError as err:
            raise ProtocolError(f"{path}: the metadata line is not valid JSON ({err})") from None
    try:
        reader = csv.DictReader(io.StringIO(text))
        header = reader.fieldnames or []
        missing = [c for c in _REQUIRED if c not in header]
        if missing:
            raise ProtocolError(f"{path}: missing column(s) {', '.join(missing)}; the header is {header}, and a"
                                f" protocol CSV needs at least {', '.join(_REQUIRED)}")
        rows = [{k: v for k, v in row.items() if k is not None} for row in reader]
    except csv.Error as err:
        raise ProtocolError(f"{path}: not a readable CSV file ({err})") from None
    return meta, rows

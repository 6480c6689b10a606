"""Cloning protocols: which typed sentence is spoken in which unseen voice.

    from eval.clone_protocol import CloneProtocol, build_clone_protocol
    protocol = build_clone_protocol(50, seed=0, root="../shared/real-speech", corpus="data/corpus")
    protocol.save("runs/clone.json")
    for trial in CloneProtocol.load("runs/clone.json"):
        cloner.speak(trial.text, list(trial.reference_paths))

A trial is a held-out sentence, a voice given by k reference clips of a speaker no model was
trained on, and, where one exists, that speaker's own reading of the sentence (`real_path`,
the "real" baseline). Trials come in two sets:

- **real**: the held-out real speakers of a real-speech folder (LibriSpeech `test-*`/`dev-*`,
  VCTK), as `python -m eval real-speech-protocol` uses them;
- **synthetic**: the test-split voices of a synthetic corpus (`split == "test"`, as
  `python -m eval protocol --unseen-only` takes them).

Texts are held out: VCTK's typed transcripts, LibriSpeech transcripts (from a `--transcripts`
manifest such as Whisper's `data/aligned/heldout-text.jsonl` where the corpus has none), and the
synthetic corpus's sentences that only its test voices read; texts that are the same sentence
as one of an `exclude_texts` manifest (a model's training data) are dropped. A text must have
`min_words`..`max_words` words, and a text that came from ASR must be made of English words
(CMUdict's, as pocketsphinx ships it), which drops misheard names and made-up words.

Choosing, for each set: voices take turns (seeded order); each voice gets the least-used text
it reads itself (so the real reading exists), else the least-used text of the set's pool
(typed texts before ASR transcripts among equally used ones);
the references are the voice's least-used clips other than any reading of that sentence (the
rule of the conversion protocol). With `render_dir`, a synthetic voice's reading of a text it
never read is rendered by the voice's own engine (the corpus builder's renderer), so the real
baseline covers synthetic trials too. Paths are stored relative to the protocol file.
"""
from __future__ import annotations

import csv
import functools
import hashlib
import json
import os
import random
import re
from collections import defaultdict
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from vc import __version__
from vc.data import Utterance, read_corpora, read_corpus
from vc.hub import write_text_atomically

from .protocol import ProtocolError, _portable, _resolve, _unseen, map_paths, sentence_words

FORMAT = "voicelab-clone-protocol"
FORMAT_VERSION = 1
SETS = ("real", "synthetic")
TYPED = "typed"  # text_origin of a corpus's own transcript (VCTK, the synthetic corpus)
PATH_KEYS = ("root", "corpora", "texts", "excluded_texts", "renders")  # metadata entries holding paths


class CloneProtocolError(ProtocolError):
    """A cloning protocol cannot be built from the data given, or its file cannot be used."""


@dataclass(frozen=True)
class CloneTrial:
    """One sentence to speak in one voice.

    Args:
        trial_id: unique within the protocol ("r01", "s01", ...).
        voice_set: "real" or "synthetic".
        voice: the speaker id ("librispeech:367", "vctk:p225", "festival-kal-young").
        text: the sentence, as typed (the WER reference).
        reference_paths: k clips of the voice; never a reading of `text`.
        real_path: the voice's own reading of `text` (a recording, or the engine's rendering of
            a synthetic voice: see `real_kind`), or None.
        real_kind: "recording", "rendered" or "" (no reading).
        text_source: where the text is from ("vctk:p225_003", "librispeech:367-130732-0001").
        text_origin: "typed", or the recogniser that transcribed it ("whisper-base").
    """

    trial_id: str
    voice_set: str
    voice: str
    text: str
    reference_paths: tuple[Path, ...]
    real_path: Path | None = None
    real_kind: str = ""
    text_source: str = ""
    text_origin: str = TYPED

    def __post_init__(self):
        put = lambda name, value: object.__setattr__(self, name, value)
        put("reference_paths", tuple(Path(p) for p in self.reference_paths))
        put("real_path", Path(self.real_path) if self.real_path else None)
        for name in ("trial_id", "voice_set", "voice", "text", "real_kind", "text_source", "text_origin"):
            put(name, str(getattr(self, name) or ""))

    @property
    def words(self) -> int:
        return len(sentence_words(self.text).split())


@dataclass
class CloneVoice:
    """A voice of the protocol: its set, corpus and every clip a trial uses as a reference (the
    voice's centroid for "similarity to other speakers" and the verification threshold)."""

    voice_set: str
    corpus: str
    clips: tuple[Path, ...]


@dataclass
class CloneProtocol:
    trials: list[CloneTrial]
    voices: dict[str, CloneVoice]
    metadata: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.trials)

    def __iter__(self) -> Iterator[CloneTrial]:
        return iter(self.trials)

    def sets(self) -> list[str]:
        """The voice sets present, in SETS order."""
        present = {t.voice_set for t in self.trials}
        return [s for s in SETS if s in present]

    def voices_in(self, voice_set: str) -> list[str]:
        return sorted(v for v, info in self.voices.items() if info.voice_set == voice_set)

    def save(self, path: str | os.PathLike) -> Path:
        """Write as JSON; paths relative to the file's folder where possible."""
        path = Path(path)
        if path.suffix.lower() != ".json":
            raise CloneProtocolError(f"cannot write cloning protocol {path}: use a .json file name")
        folder = Path(os.path.abspath(path)).parent
        rows = []
        for trial in self.trials:
            row = {f.name: getattr(trial, f.name) for f in fields(CloneTrial)}
            row["reference_paths"] = [_portable(p, folder) for p in trial.reference_paths]
            row["real_path"] = _portable(trial.real_path, folder) if trial.real_path else None
            rows.append(row)
        voices = {name: {"voice_set": v.voice_set, "corpus": v.corpus, "clips": [_portable(p, folder) for p in v.clips]}
                  for name, v in sorted(self.voices.items())}
        meta = map_metadata_paths(self.metadata, lambda p: _portable(p, folder))
        doc = {"format": FORMAT, "version": FORMAT_VERSION, "metadata": meta, "voices": voices, "trials": rows}
        return write_text_atomically(path, json.dumps(doc, indent=1, ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike, check_files: bool = True) -> "CloneProtocol":
        """Read a cloning protocol; CloneProtocolError (a ValueError) names the file and problem."""
        path = Path(path)
        if not path.is_file():
            raise CloneProtocolError(f"cloning protocol {path} does not exist; write one with "
                                     "`python -m eval clone-protocol --out FILE.json ...`")
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise CloneProtocolError(f"cannot read cloning protocol {path}: {err}") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise CloneProtocolError(f"{path} is not a cloning protocol (format {FORMAT!r}); conversion protocols "
                                     "go to `python -m eval run`")
        if not isinstance(doc.get("version"), int) or doc["version"] > FORMAT_VERSION:
            raise CloneProtocolError(f"{path}: version {doc.get('version')!r} is newer than {FORMAT_VERSION}")
        folder = Path(os.path.abspath(path)).parent
        try:
            voices = {name: CloneVoice(v["voice_set"], v.get("corpus", ""),
                                       tuple(_resolve(p, folder) for p in v["clips"]))
                      for name, v in doc["voices"].items()}
            known = {f.name for f in fields(CloneTrial)}
            trials = []
            for row in doc["trials"]:
                values = {k: v for k, v in row.items() if k in known}
                values["reference_paths"] = tuple(_resolve(p, folder) for p in row["reference_paths"])
                values["real_path"] = _resolve(row["real_path"], folder) if row.get("real_path") else None
                trials.append(CloneTrial(**values))
        except (KeyError, TypeError, AttributeError) as err:
            raise CloneProtocolError(f"{path}: malformed cloning protocol ({type(err).__name__}: {err})") from None
        metadata = map_metadata_paths(doc.get("metadata") or {}, lambda p: str(_resolve(p, folder)))
        protocol = cls(trials, voices, metadata)
        _check(path, protocol, check_files)
        return protocol


def map_metadata_paths(metadata: dict, convert) -> dict:
    """A JSON-clean copy of metadata with its path entries (`PATH_KEYS`) passed through convert."""
    return map_paths(metadata, convert, PATH_KEYS)


def _check(path: Path, protocol: CloneProtocol, check_files: bool) -> None:
    seen: set[str] = set()
    for trial in protocol:
        where = f"{path}: trial {trial.trial_id}"
        if trial.trial_id in seen:
            raise CloneProtocolError(f"{where}: the trial id appears twice")
        seen.add(trial.trial_id)
        if not trial.text.strip():
            raise CloneProtocolError(f"{where}: no text")
        if not trial.reference_paths:
            raise CloneProtocolError(f"{where}: no reference clip")
        if trial.voice not in protocol.voices or protocol.voices[trial.voice].voice_set != trial.voice_set:
            raise CloneProtocolError(f"{where}: voice {trial.voice!r} is not listed under the protocol's voices")
        if trial.real_path is not None and trial.real_path in trial.reference_paths:
            raise CloneProtocolError(f"{where}: a reference clip is the voice's reading of the text")
        files = [*trial.reference_paths, *([trial.real_path] if trial.real_path else [])] if check_files else []
        for audio in files:
            if not audio.is_file():
                raise CloneProtocolError(f"{where}: audio file {audio} does not exist")


# ------------------------------------------------------------------------------------ texts


@functools.lru_cache(maxsize=1)
def english_vocabulary() -> frozenset[str] | None:
    """CMUdict's words (pocketsphinx's en-US dictionary), or None where it is not installed."""
    try:
        import pocketsphinx
    except ImportError:
        return None
    path = Path(pocketsphinx.__file__).parent / "model" / "en-us" / "cmudict-en-us.dict"
    if not path.is_file():
        return None
    words = set()
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        word = line.split(" ", 1)[0]
        words.add(re.sub(r"\(\d+\)$", "", word))
    return frozenset(words)


_SUFFIXES = ("'s", "s", "es", "ed", "d", "ing", "ly", "er", "ers", "est", "ness", "ment", "ion", "ions")


def unknown_words(text: str, vocabulary: frozenset[str]) -> list[str]:
    """Words of `text` that are neither in `vocabulary` nor a known word plus a common suffix or
    two known words of 4+ letters joined ("workhouse"); numbers count as known."""
    from .intelligibility import normalize_text  # Whisper's normaliser: American spelling, digits

    def known(word: str) -> bool:
        if word in vocabulary or any(c.isdigit() for c in word):
            return True
        if any(word.endswith(s) and word[:-len(s)] in vocabulary for s in _SUFFIXES if len(word) > len(s) + 2):
            return True
        return any(word[:i] in vocabulary and word[i:] in vocabulary for i in range(4, len(word) - 3))

    return [w for w in normalize_text(text).split() if not known(w.strip("'"))]


@dataclass
class _Text:
    text: str
    source: str
    origin: str
    readings: dict[str, list[Utterance]] = field(default_factory=lambda: defaultdict(list))


def read_texts(paths: Iterable[str | os.PathLike]) -> list[str]:
    """The texts of manifests: JSONL ("text" field), CSV/TSV ("text" column) or plain lines."""
    texts = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise CloneProtocolError(f"text file {path} does not exist")
        content = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix.lower() in (".jsonl", ".json"):
            for line in content.splitlines():
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                if isinstance(row, dict) and row.get("text"):
                    texts.append(str(row["text"]))
        elif path.suffix.lower() in (".csv", ".tsv"):
            reader = csv.DictReader(content.splitlines(), delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
            texts += [row["text"] for row in reader if row.get("text")]
        else:
            texts += [line for line in content.splitlines() if line.strip()]
    return texts


def _transcripts(paths: Iterable[str | os.PathLike]) -> dict[Path, tuple[str, str]]:
    """audio path -> (text, origin) from JSONL manifests with "path", "text" (and "text_source")."""
    table: dict[Path, tuple[str, str]] = {}
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise CloneProtocolError(f"--transcripts {path} does not exist")
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
                audio = Path(os.path.abspath(path.parent / row["path"]))
            except (ValueError, KeyError, TypeError):
                continue
            if row.get("text"):
                table[audio] = (str(row["text"]), str(row.get("text_source") or "asr"))
    return table


# ---------------------------------------------------------------------------------- building


def build_clone_protocol(trials: int, seed: int = 0, root: str | os.PathLike | None = None,
                         corpus: str | os.PathLike | None = None, *, references: int = 2,
                         transcripts: Sequence[str | os.PathLike] = (),
                         exclude_texts: Sequence[str | os.PathLike] = (),
                         min_words: int = 5, max_words: int = 25,
                         render_dir: str | os.PathLike | None = None,
                         sets: Sequence[str] = SETS) -> CloneProtocol:
    """`trials` cloning trials, split evenly over the sets that have data (real first).

    Args:
        root: a real-speech folder (`librispeech/test-*`, `vctk/`); None: no real set.
        corpus: a synthetic corpus with a test split; None: no synthetic set.
        references: clips per voice per trial (k).
        transcripts: JSONL manifests giving texts of real clips that have none (Whisper's).
        exclude_texts: manifests of texts a trained model saw; the same sentences are dropped.
        render_dir: where to render synthetic voices' readings of texts they never read.
        sets: which of "real" and "synthetic" to build.
    """
    if trials < 1:
        raise CloneProtocolError(f"trials must be at least 1, got {trials}")
    if references < 1:
        raise CloneProtocolError(f"references must be at least 1, got {references}")
    if not 1 <= min_words <= max_words:
        raise CloneProtocolError(f"need 1 <= min_words <= max_words, got {min_words} and {max_words}")
    unknown = sorted(set(sets) - set(SETS))
    if unknown:
        raise CloneProtocolError(f"unknown set(s) {unknown}; choose from {', '.join(SETS)}")
    rng = random.Random(f"voicelab-clone-protocol-{seed}")
    excluded = {sentence_words(t) for t in read_texts(exclude_texts)}
    vocabulary = english_vocabulary()
    notes: list[str] = []
    if vocabulary is None:
        notes.append("ASR transcripts were not checked for English words: pocketsphinx's CMUdict is not installed")

    real_voices, real_texts = ({}, {})
    if "real" in sets and root is not None:
        real_voices, real_texts = _real_set(Path(root), transcripts)
    synth_voices, synth_texts, specs = ({}, {}, {})
    if "synthetic" in sets and corpus is not None:
        synth_voices, synth_texts, specs = _synthetic_set(Path(corpus))
    available = [s for s, voices in (("real", real_voices), ("synthetic", synth_voices)) if voices]
    if not available:
        raise CloneProtocolError("no voices: give --root (a real-speech folder with librispeech/test-* or vctk/) "
                                 "and/or --corpus (a synthetic corpus with a test split)")

    def eligible(entry: _Text) -> bool:
        words = len(sentence_words(entry.text).split())
        if not min_words <= words <= max_words or sentence_words(entry.text) in excluded:
            return False
        return entry.origin == TYPED or vocabulary is None or not unknown_words(entry.text, vocabulary)

    pools = {"real": [t for t in real_texts.values() if eligible(t)],
             "synthetic": [t for t in [*synth_texts.values(), *real_texts.values()] if eligible(t)]}
    counts = {s: trials // len(available) + (i < trials % len(available)) for i, s in enumerate(available)}
    chosen: dict[str, list[dict]] = {}
    for voice_set in available:
        voices = real_voices if voice_set == "real" else synth_voices
        renderable = set(specs) if (voice_set == "synthetic" and render_dir is not None) else set()
        chosen[voice_set] = _choose(voice_set, voices, pools[voice_set], counts[voice_set], references, rng,
                                    renderable)
    if render_dir is not None and chosen.get("synthetic"):
        notes += _render(chosen["synthetic"], specs, Path(render_dir))

    # interleave the sets, so a run stopped half-way has scored both
    ordered: list[CloneTrial] = []
    numbers = {s: 0 for s in available}
    width = len(str(max(counts.values())))
    for i in range(max(counts.values())):
        for voice_set in available:
            if i < len(chosen[voice_set]):
                numbers[voice_set] += 1
                ordered.append(CloneTrial(f"{voice_set[0]}{numbers[voice_set]:0{width}d}", voice_set,
                                          **chosen[voice_set][i]))
    clips: dict[str, set[Path]] = defaultdict(set)
    for trial in ordered:
        clips[trial.voice].update(trial.reference_paths)
    corpora = {**{v: u[0].corpus for v, u in real_voices.items()}, **{v: u[0].corpus for v, u in synth_voices.items()}}
    voice_sets = {**{v: "real" for v in real_voices}, **{v: "synthetic" for v in synth_voices}}
    voices = {v: CloneVoice(voice_sets[v], corpora[v], tuple(sorted(paths))) for v, paths in clips.items()}
    metadata = {
        "builder": "build_clone_protocol", "created_by": f"voicelab {__version__}", "seed": seed,
        "trials": len(ordered), "sets": {s: len(chosen[s]) for s in available},
        "options": {"references": references, "min_words": min_words, "max_words": max_words,
                    "render_synthetic": render_dir is not None},
        "speakers": len(voices),
        "real_readings": sum(t.real_path is not None for t in ordered),
        "pool_texts": {s: len(pools[s]) for s in available},
        "excluded_texts": [os.path.abspath(p) for p in exclude_texts],
        "texts": [os.path.abspath(p) for p in transcripts],
        "notes": notes,
    }
    if root is not None:
        metadata["root"] = os.path.abspath(root)
    if corpus is not None:
        metadata["corpora"] = [os.path.abspath(corpus)]
    if render_dir is not None:
        metadata["renders"] = os.path.abspath(render_dir)
    return CloneProtocol(ordered, voices, metadata)


def _real_set(root: Path, transcripts: Sequence[str | os.PathLike]):
    """(voice -> utterances, text key -> _Text) of the held-out real speakers."""
    if not root.is_dir():
        raise CloneProtocolError(f"--root {root} is not a folder; give a real-speech folder with librispeech/test-*"
                                 " and/or vctk/")
    sources, names = [], []
    libri = root / "librispeech"
    if libri.is_dir():
        held = sorted(d for d in libri.iterdir() if d.is_dir() and d.name.startswith(("test-", "dev-")))
        sources += held
        names += ["librispeech" if len(held) == 1 else f"librispeech-{d.name}" for d in held]
    if (root / "vctk").is_dir():
        sources.append(root / "vctk")
        names.append("vctk")
    if not sources:
        raise CloneProtocolError(f"{root} has no held-out speakers: looked for librispeech/test-*, dev-* and vctk/")
    table = _transcripts(transcripts)
    voices: dict[str, list[Utterance]] = defaultdict(list)
    texts: dict[str, _Text] = {}
    for utt in read_corpora(sources, names):
        path = Path(os.path.abspath(utt.path))
        utt = Utterance(path, utt.speaker, utt.text, utt.alignment, utt.corpus, utt.extra)
        voices[utt.speaker].append(utt)
        text, origin = (utt.text, TYPED) if utt.text else table.get(path, ("", ""))
        if text:
            entry = texts.setdefault(sentence_words(text), _Text(text, f"{utt.corpus}:{path.stem}", origin))
            entry.readings[utt.speaker].append(utt)
    return {v: sorted(u, key=lambda x: x.path) for v, u in sorted(voices.items())}, texts


def _synthetic_set(corpus: Path):
    """(test voice -> utterances, text key -> _Text of sentences only test voices read, voice -> VoiceSpec)."""
    by_speaker: dict[str, list[Utterance]] = defaultdict(list)
    for u in read_corpus(corpus):
        by_speaker[u.speaker].append(Utterance(Path(os.path.abspath(u.path)), u.speaker, u.text, u.alignment,
                                               u.corpus, u.extra))
    test = _unseen(dict(by_speaker), set())
    seen = {sentence_words(u.text or "") for s, us in by_speaker.items() if s not in test for u in us}
    texts: dict[str, _Text] = {}
    for speaker, us in test.items():
        for u in us:
            key = sentence_words(u.text or "")
            if key and key not in seen:
                entry = texts.setdefault(key, _Text(u.text, f"{u.corpus}:{Path(u.path).stem}", TYPED))
                entry.readings[speaker].append(u)
    return ({v: sorted(u, key=lambda x: x.path) for v, u in sorted(test.items())}, texts,
            _voice_specs(corpus, set(test)))


def _voice_specs(corpus: Path, voices: set[str]) -> dict:
    """voice -> vc.data VoiceSpec from the corpus's corpus.json, for rendering new readings."""
    from vc.data.voices import VoiceSpec

    info = corpus / "corpus.json" if corpus.is_dir() else corpus.parent / "corpus.json"
    try:
        speakers = json.loads(info.read_text(encoding="utf-8")).get("speakers", [])
    except (OSError, ValueError):
        return {}
    names = {f.name for f in fields(VoiceSpec)}
    return {s["name"]: VoiceSpec(**{k: v for k, v in s.items() if k in names})
            for s in speakers if isinstance(s, dict) and s.get("name") in voices}


def _choose(voice_set: str, voices: dict[str, list[Utterance]], pool: list[_Text], count: int, k: int,
            rng: random.Random, renderable: set[str]) -> list[dict]:
    """`count` (voice, text, references, reading) choices: see the module docstring."""
    if not pool:
        raise CloneProtocolError(f"no held-out text is left for the {voice_set} set after the length, English-word "
                                 "and exclusion filters; widen --min-words/--max-words or give --transcripts")
    order = sorted(voices)
    rng.shuffle(order)
    rank = {t.text: i for i, t in enumerate(rng.sample(pool, len(pool)))}
    clip_rank = {u.path: rng.random() for us in voices.values() for u in us}
    text_use: dict[str, int] = defaultdict(int)
    clip_use: dict[Path, int] = defaultdict(int)
    used: set[tuple[str, str]] = set()
    chosen: list[dict] = []
    active, turn = order[:], 0
    while len(chosen) < count and active:
        voice = active[turn % len(active)]
        options = [t for t in pool if (voice, t.text) not in used
                   and len(voices[voice]) - len(t.readings.get(voice, [])) >= k]
        if not options:  # this voice has said every text it can: the others go on
            active.remove(voice)
            continue
        turn += 1
        has_reading = lambda t: bool(t.readings.get(voice)) or voice in renderable
        text = min(options, key=lambda t: (not has_reading(t), text_use[t.text], t.origin != TYPED, rank[t.text]))
        own = text.readings.get(voice, [])
        excluded = {u.path for u in own}
        refs = sorted((u for u in voices[voice] if u.path not in excluded), key=lambda u: (clip_use[u.path],
                                                                                          clip_rank[u.path]))[:k]
        for u in refs:
            clip_use[u.path] += 1
        text_use[text.text] += 1
        used.add((voice, text.text))
        chosen.append({"voice": voice, "text": text.text, "reference_paths": tuple(u.path for u in refs),
                       "real_path": own[0].path if own else None, "real_kind": "recording" if own else "",
                       "text_source": text.source, "text_origin": text.origin})
    if len(chosen) < count:
        raise CloneProtocolError(f"asked for {count} {voice_set} trials but only {len(chosen)} distinct (voice, text)"
                                 f" pairs exist among {len(voices)} voices and {len(pool)} texts")
    return chosen


def _render(chosen: list[dict], specs: dict, render_dir: Path) -> list[str]:
    """Render each synthetic trial's text in its voice where the corpus has no reading."""
    from vc.data.build import PlannedUtterance, render_batch

    notes, jobs = [], defaultdict(list)
    for choice in chosen:
        if choice["real_path"] is None and choice["voice"] in specs:
            digest = hashlib.sha256(choice["text"].encode()).hexdigest()[:10]
            item = PlannedUtterance(f"{choice['voice']}_{digest}", specs[choice["voice"]], choice["text"],
                                    digest, False, "test")
            jobs[choice["voice"]].append((choice, item))
    for voice, items in sorted(jobs.items()):
        pending = [item for _, item in items if not (render_dir / item.relpath).is_file()]
        failed = render_batch(str(render_dir), pending) if pending else {}
        for choice, item in items:
            path = render_dir / item.relpath
            if item.utt_id in failed or not path.is_file():
                notes.append(f"could not render {item.utt_id}: {failed.get(item.utt_id, 'no file written')}")
                continue
            choice.update(real_path=path, real_kind="rendered")
    return notes

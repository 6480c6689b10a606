"""Phone alignments of real speech from its transcript, with pocketsphinx's forced aligner.

    aligner = ForcedAligner()
    segments = aligner.align("p225_003.wav", "Six spoons of fresh snow peas ...")
    # [Segment(0.0, 0.22, "s"), Segment(0.22, 0.29, "ih"), ...]   phones of vc.data.phones

pocketsphinx (its en-US acoustic model and CMUdict ship inside the pip package) aligns in two
passes: words against the audio (`set_align_text`), then phones inside the words
(`set_alignment`). Words CMUdict lacks ("Norsemen" in some releases, names, numbers written as
digits) are given espeak-ng's pronunciation, mapped to ARPAbet, before aligning, since the aligner
cannot place a word it cannot pronounce. Align the untrimmed recording: the aligner places the
leading and trailing silence itself. Times are seconds from the start of the file, at
pocketsphinx's 10 ms frames.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np

from vc.audio import AudioSource, load_audio
from vc.data.phones import PhoneSetError, espeak_word_phones, to_arpabet
from vc.data.utterance import Segment, Utterance
from vc.errors import VoicelabError

FRAME_SECONDS = 0.01  # pocketsphinx's frame shift


class AlignmentError(VoicelabError):
    """A transcript could not be aligned to its audio."""


def transcript_words(text: str) -> list[str]:
    """The words the aligner is given: lower case, letters, digits and inner apostrophes."""
    text = re.sub(r"[-–—/]", " ", text.lower())
    words = re.findall(r"[a-z0-9]+(?:'[a-z0-9]+)*", text)
    return words


class ForcedAligner:
    """Word and phone alignment of speech to its transcript (16 kHz, pocketsphinx en-US).

    Args:
        espeak_voice: the espeak-ng voice that pronounces out-of-vocabulary words.
    """

    sample_rate = 16000

    def __init__(self, espeak_voice: str = "en-us"):
        try:
            from pocketsphinx import Decoder
        except ImportError as error:
            raise VoicelabError("the forced aligner needs pocketsphinx: pip install pocketsphinx") from error
        self.decoder = Decoder(samprate=self.sample_rate, loglevel="FATAL", bestpath=False)
        self.espeak_voice = espeak_voice
        self.added: dict[str, str] = {}  # word -> ARPAbet pronunciation given to the decoder

    def align(self, audio: AudioSource, text: str) -> list[Segment]:
        """Phone segments (vc.data.phones labels, "sil" for pauses) of `audio` reading `text`.

        Raises AlignmentError when the transcript has no words, a word cannot be pronounced,
        or no alignment path exists (the text does not match the audio).
        """
        words = transcript_words(text)
        if not words:
            raise AlignmentError(f"the transcript {text!r} has no words to align")
        for word in words:
            self._ensure_word(word)
        clip = load_audio(audio).resample(self.sample_rate)
        pcm = (np.clip(clip.samples, -1.0, 1.0) * 32767).astype(np.int16).tobytes()
        try:
            # optional-length silences at both ends (at least 30 ms): LibriSpeech and LJSpeech
            # clips start and end with pauses that would otherwise be glued to the edge words
            self.decoder.set_align_text("<sil> " + " ".join(words) + " <sil>")
            self._pass(pcm)
            self.decoder.set_alignment()
            self._pass(pcm)
            alignment = self.decoder.get_alignment()
        except RuntimeError as error:
            raise AlignmentError(f"pocketsphinx could not align {text[:60]!r}: {error}") from None
        if alignment is None:
            raise AlignmentError(f"no alignment path for {text[:60]!r}; does the transcript match the audio?")
        segments = []
        for word in alignment:
            for phone in word:
                label = to_arpabet(phone.name, "cmu")
                onset = phone.start * FRAME_SECONDS
                segments.append(Segment(onset, onset + phone.duration * FRAME_SECONDS, label))
        if not segments:
            raise AlignmentError(f"pocketsphinx returned an empty alignment for {text[:60]!r}")
        end = clip.duration
        if segments[-1].offset < end - FRAME_SECONDS:  # the tail the aligner did not cover
            segments.append(Segment(segments[-1].offset, end, "sil"))
        return segments

    def _pass(self, pcm: bytes) -> None:
        self.decoder.start_utt()
        self.decoder.process_raw(pcm, full_utt=True)
        self.decoder.end_utt()

    def _ensure_word(self, word: str) -> None:
        if word in self.added or self.decoder.lookup_word(word) is not None:
            return
        phones = espeak_pronunciation(word, self.espeak_voice)
        self.decoder.add_word(word, " ".join(p.upper() for p in phones), True)
        self.added[word] = " ".join(phones)


def espeak_pronunciation(word: str, voice: str = "en-us") -> list[str]:
    """ARPAbet phones of `word` as espeak-ng says it (digits are read as numbers)."""
    if not shutil.which("espeak-ng"):
        raise AlignmentError(f"{word!r} is not in pocketsphinx's dictionary and espeak-ng, which would "
                             "pronounce it, is not installed (apt-get install espeak-ng)")
    result = subprocess.run(["espeak-ng", "-q", "-x", "--sep=_", "-v", voice, word],
                            capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise AlignmentError(f"espeak-ng could not pronounce {word!r}: {result.stderr.strip()}")
    phones = []
    for chunk in result.stdout.split():
        try:
            phones += espeak_word_phones(chunk)
        except PhoneSetError as error:
            raise AlignmentError(f"cannot pronounce {word!r}: {error}") from None
    if not phones:
        raise AlignmentError(f"espeak-ng gave no phones for {word!r}")
    return phones


def align_corpus(utterances, out: str | os.PathLike, progress: bool = True) -> dict[str, int]:
    """Align every utterance that has a transcript into the JSONL manifest `out`, resuming:
    rows already in `out` (by audio path) are kept, each new one is appended as it is made.
    Utterances that fail to align are listed in `out` + ".failed.tsv" and skipped.

    Returns counts {"aligned", "reused", "failed", "untranscribed"}.
    """
    from tqdm.auto import tqdm

    from vc.data.manifest import _row_of

    out = Path(os.path.abspath(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if out.is_file():
        for line in out.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a line cut short by an interruption
            done.add(os.path.normpath(out.parent / row["path"]))
    counts = {"aligned": 0, "reused": 0, "failed": 0, "untranscribed": 0}
    aligner = ForcedAligner()
    failures = []
    with open(out, "a", encoding="utf-8") as handle:
        for utt in tqdm(list(utterances), desc="aligning", unit="utt", disable=not progress):
            if not utt.text:
                counts["untranscribed"] += 1
                continue
            if os.path.normpath(os.path.abspath(utt.path)) in done:
                counts["reused"] += 1
                continue
            try:
                segments = aligner.align(utt.path, utt.text)
            except (AlignmentError, VoicelabError) as error:
                counts["failed"] += 1
                failures.append(f"{utt.path}\t{error}")
                continue
            aligned = Utterance(Path(os.path.abspath(utt.path)), utt.speaker, utt.text, tuple(segments),
                                utt.corpus, {**utt.extra, "phoneset": "arpabet", "aligner": "pocketsphinx"})
            handle.write(json.dumps(_row_of(aligned, out.parent), ensure_ascii=False) + "\n")
            handle.flush()
            counts["aligned"] += 1
    if failures:
        with open(f"{out}.failed.tsv", "a", encoding="utf-8") as handle:
            handle.write("\n".join(failures) + "\n")
    return counts

"""Training data for vocoders: waveform segments with the mel frames they should come from.

The mels are either the ground truth (computed from the waveform) or, for fine-tuning on what a
conversion model or synthesizer really produces, that model's reconstruction of each training
utterance in its own speaker's voice ("ground-truth-aligned" mels, as SV2TTS trains its vocoder),
optionally matched phone by phone to the utterance as the demo matches to a reference. Either
way frame f of a mel lines up with samples [f * hop, (f + 1) * hop) of the waveform, so a segment
of F frames starting at frame f pairs with samples [f * hop, (f + F) * hop).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from vc.audio import prepare_speech
from vc.data.phones import PhoneSetError
from vc.errors import CheckpointError
from vc.hub import load_model
from vc.mel import MelConfig
from vc.models import ConversionModel
from vc.models.synthesizer import DurationSynthesizer, alignment_tokens, phone_pitch
from vc.phone_matching import PhoneMeanMatching
from vc.pipeline import resolve_run_folder
from vc.pitch import f0_contour

from .features import UtteranceFeatures, cache_key, save_atomically, speaker_embeddings


@dataclass
class VocoderItem:
    name: str
    mel: torch.Tensor   # (n_mels, frames): the vocoder's input
    wav: torch.Tensor   # (samples,) float32 in [-1, 1]: what it should produce
    f0: torch.Tensor | None = None  # (frames,) Hz of the waveform, 0 unvoiced: for vocoders that predict F0


def _read_cached(entry: Path, name: str) -> np.ndarray | None:
    """Array `name` of a cache entry, or None when it is missing or damaged (then removed, so
    it is recomputed)."""
    if not entry.exists():
        return None
    try:
        with np.load(entry) as data:
            return data[name]
    except (OSError, ValueError, KeyError):
        entry.unlink(missing_ok=True)
        return None


def load_waveforms(features: Sequence[UtteranceFeatures], mel: MelConfig, cache_dir: str | Path,
                   progress: bool = True, trim: bool = True) -> list[torch.Tensor]:
    """The prepared waveform (resampled, level-normalised and, with `trim`, trimmed exactly as
    the cached mels were made) of every utterance, cached on disk as 16-bit samples."""
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    waves = []
    for f in tqdm(features, desc="waveforms", unit="utt", disable=not progress):
        key = cache_key(f.utterance.path, mel) if trim else cache_key(f.utterance.path, mel, ["untrimmed"])
        entry = cache / f"{key}.wav.npz"
        samples = _read_cached(entry, "pcm")
        if samples is None:
            audio = prepare_speech(f.utterance.path, mel.sample_rate, trim=trim)
            samples = np.clip(np.round(audio.samples * 32767), -32768, 32767).astype(np.int16)
            save_atomically(entry, pcm=samples)
        waves.append(torch.from_numpy(samples.astype(np.float32) / 32767))
    return waves


def load_f0_labels(features: Sequence[UtteranceFeatures], waves: Sequence[torch.Tensor],
                   mel: MelConfig, cache_dir: str | Path, progress: bool = True,
                   trim: bool = True) -> list[torch.Tensor]:
    """pYIN's F0 (Hz, 0 where unvoiced) of each prepared waveform, one value per mel frame
    (frame f centred on sample f * hop, as the mels are), cached on disk."""
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    labels = []
    for f, wav in tqdm(list(zip(features, waves)), desc="F0 labels", unit="utt", disable=not progress):
        tags = ["f0hz"] if trim else ["f0hz", "untrimmed"]
        entry = cache / f"{cache_key(f.utterance.path, mel, tags)}.f0.npz"
        f0 = _read_cached(entry, "f0")
        if f0 is None:
            contour = f0_contour(wav.numpy(), mel.sample_rate, mel.hop_length)
            f0 = np.nan_to_num(contour, nan=0.0).astype(np.float32)
            save_atomically(entry, f0=f0)
        frames = f.mel.shape[-1]
        f0 = torch.from_numpy(f0[:frames])
        labels.append(torch.nn.functional.pad(f0, (0, frames - f0.shape[-1])))
    return labels


def load_mel_model(name: str | Path, mel: MelConfig) -> ConversionModel | DurationSynthesizer:
    """The conversion model or text-to-mel synthesizer whose output mels a vocoder is fine-tuned
    on; its mel settings must be the vocoder's."""
    model = load_model(resolve_run_folder(name))
    if not isinstance(model, (ConversionModel, DurationSynthesizer)):
        raise CheckpointError(f"--mels-from '{name}' is a {type(model).__name__}, not a "
                              "conversion model (AutoVC, VQVC+, VQ-VAE, PPG-VC) or a synthesizer "
                              "run or folder")
    differences = mel.mismatches(model.mel)
    if differences:
        raise CheckpointError(f"--mels-from '{name}' makes other mels than this vocoder takes: "
                              f"{'; '.join(differences)} (vocoder vs model); train the vocoder "
                              "with the model's mel settings")
    return model.eval()


def mel_model_targets(models: Sequence[ConversionModel | DurationSynthesizer]) -> tuple[str, ...]:
    """The frame targets the models' reconstructions need: phone labels for a model that can
    be told the phones (PPG-VC) and for the synthesizer (its tokens and durations), with F0
    for the synthesizer's phone pitch. Those features are computed on untrimmed clips."""
    targets: set[str] = set()
    for model in models:
        if isinstance(model, DurationSynthesizer):
            targets.update(("phones", "f0"))
        elif model.accepts_phone_labels:
            targets.add("phones")
    return tuple(sorted(targets))


def _labels(f: UtteranceFeatures) -> torch.Tensor | None:
    labels = f.frames.get("phones")
    return labels if labels is not None and bool((labels >= 0).any()) else None


def _synthesized(model: DurationSynthesizer, f: UtteranceFeatures, embedding: torch.Tensor
                 ) -> torch.Tensor | None:
    """The synthesizer's teacher-forced mel of an aligned utterance: its phones, their true
    durations and pitch, so frame f still lines up with the recording (SV2TTS's GTA mels)."""
    frames = f.mel.shape[-1]
    try:
        tokens, lengths = alignment_tokens(f.utterance.alignment, frames, model.mel.frame_rate,
                                           f.utterance.extra.get("phoneset", "arpabet"))
    except PhoneSetError:
        return None
    if len(tokens) < 3:
        return None
    pitch = phone_pitch(lengths, f.frames["lf0"], f.frames["voiced"])
    out = model(torch.tensor([tokens]), embedding[None], torch.tensor([lengths]), pitch[None])
    return out["post"][0, :, :frames].float()


@torch.inference_mode()
def reconstructed_mels(model: ConversionModel | DurationSynthesizer, features: Sequence[UtteranceFeatures],
                       matching: PhoneMeanMatching | None = None, progress: bool = True
                       ) -> list[torch.Tensor | None]:
    """Each utterance said by `model` in its own speaker's voice: what the model really outputs.

    A model that can be told the phones (PPG-VC) gets the utterance's aligned phones, as the
    transcript-guided converter does; the synthesizer is teacher-forced on the alignment.
    `matching` then moves the output phone by phone to the utterance's own spectrum, as the
    demo's matching moves it to the reference's. An utterance the model cannot say (the
    synthesizer on one with no alignment) gives None.
    """
    per_speaker = speaker_embeddings(features)
    silence = math.log(model.mel.log_floor) if model.mel.compression == "log" else 0.0
    out: list[torch.Tensor | None] = []
    name = type(model).__name__
    for f in tqdm(features, desc=f"{name} mels", unit="utt", disable=not progress):
        embedding = per_speaker[f.speaker_index]
        labels = _labels(f)
        if isinstance(model, DurationSynthesizer):
            mel = _synthesized(model, f, embedding) if labels is not None else None  # labels: it is aligned
        else:
            speaker = model.speaker([f.mel], embedding if model.speaker_input == "embedding" else None)
            frames = f.mel.shape[-1]
            padded = -(-frames // model.frame_multiple) * model.frame_multiple
            source = torch.nn.functional.pad(f.mel, (0, padded - frames), value=silence)
            phones = None
            if model.accepts_phone_labels and labels is not None:
                phones = torch.nn.functional.pad(labels, (0, padded - frames), value=-1)[None]
            kwargs = {"phones": phones} if phones is not None else {}
            mel = model.convert(source[None], speaker[None], speaker[None], **kwargs)[0, :, :frames].float()
        if mel is not None and matching is not None and labels is not None:
            mel = matching.refine(mel, labels, [f.mel], [labels])
        out.append(mel)
    return out


class VocoderBatches:
    """Random aligned (mel, waveform) segments, reproducible from (seed, step, rank).

    Args:
        items: the utterances.
        segment_frames: mel frames per segment (HiFi-GAN's 8192 samples are 32 frames at hop 256).
        batch_size: segments per batch.
        hop: samples per mel frame.
        silence: the mel value that pads utterances shorter than a segment.
    """

    def __init__(self, items: Sequence[VocoderItem], segment_frames: int, batch_size: int,
                 hop: int, seed: int, silence: float, rank: int = 0):
        if not items:
            raise ValueError("no utterances to draw vocoder batches from")
        self.items, self.frames, self.batch_size, self.hop = list(items), segment_frames, batch_size, hop
        self.seed, self.rank, self.silence = seed, rank, silence

    def _segment(self, item: VocoderItem, generator: torch.Generator) -> dict[str, torch.Tensor]:
        frames, hop = self.frames, self.hop
        available = min(item.mel.shape[-1], item.wav.shape[-1] // hop)
        start = int(torch.randint(0, max(1, available - frames + 1), (1,), generator=generator))
        mel = item.mel[:, start:start + frames]
        wav = item.wav[start * hop:(start + frames) * hop]
        out = {"mel": torch.nn.functional.pad(mel, (0, frames - mel.shape[-1]), value=self.silence),
               "wav": torch.nn.functional.pad(wav, (0, frames * hop - wav.shape[-1]))}
        if item.f0 is not None:
            f0 = item.f0[start:start + frames]
            out["f0"] = torch.nn.functional.pad(f0, (0, frames - f0.shape[-1]))
        return out

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step * 31 + self.rank)
        picks = torch.randint(0, len(self.items), (self.batch_size,), generator=generator)
        segments = [self._segment(self.items[int(i)], generator) for i in picks]
        return {key: torch.stack([s[key] for s in segments]) for key in segments[0]}

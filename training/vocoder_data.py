"""Training data for vocoders: waveform segments with the mel frames they should come from.

The mels are either the ground truth (computed from the waveform) or, for fine-tuning on what a
conversion model really produces, that model's reconstruction of each training utterance in its
own speaker's voice ("ground-truth-aligned" mels, as SV2TTS trains its vocoder). Either way frame
f of a mel lines up with samples [f * hop, (f + 1) * hop) of the waveform, so a segment of F
frames starting at frame f pairs with samples [f * hop, (f + F) * hop).
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
from vc.errors import CheckpointError
from vc.hub import load_model
from vc.mel import MelConfig
from vc.models import ConversionModel
from vc.pipeline import resolve_run_folder

from .features import UtteranceFeatures, cache_key, save_atomically, speaker_embeddings


@dataclass
class VocoderItem:
    name: str
    mel: torch.Tensor   # (n_mels, frames): the vocoder's input
    wav: torch.Tensor   # (samples,) float32 in [-1, 1]: what it should produce


def load_waveforms(features: Sequence[UtteranceFeatures], mel: MelConfig, cache_dir: str | Path,
                   progress: bool = True) -> list[torch.Tensor]:
    """The prepared waveform (resampled, trimmed, level-normalised exactly as the cached mels
    were made) of every utterance, cached on disk as 16-bit samples."""
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    waves = []
    for f in tqdm(features, desc="waveforms", unit="utt", disable=not progress):
        entry = cache / f"{cache_key(f.utterance.path, mel)}.wav.npz"
        samples = None
        if entry.exists():
            try:
                with np.load(entry) as data:
                    samples = data["pcm"]
            except (OSError, ValueError, KeyError):
                entry.unlink(missing_ok=True)  # a damaged cache entry is recomputed
        if samples is None:
            audio = prepare_speech(f.utterance.path, mel.sample_rate)
            samples = np.clip(np.round(audio.samples * 32767), -32768, 32767).astype(np.int16)
            save_atomically(entry, pcm=samples)
        waves.append(torch.from_numpy(samples.astype(np.float32) / 32767))
    return waves


def load_mel_model(name: str | Path, mel: MelConfig) -> ConversionModel:
    """The conversion model whose output mels a vocoder is fine-tuned on; its mel settings must
    be the vocoder's."""
    model = load_model(resolve_run_folder(name))
    if not isinstance(model, ConversionModel):
        raise CheckpointError(f"--mels-from '{name}' is a {type(model).__name__}, not a "
                              "conversion model (AutoVC, VQVC+, VQ-VAE) run or folder")
    differences = mel.mismatches(model.mel)
    if differences:
        raise CheckpointError(f"--mels-from '{name}' makes other mels than this vocoder takes: "
                              f"{'; '.join(differences)} (vocoder vs model); train the vocoder "
                              "with the model's mel settings")
    return model.eval()


@torch.inference_mode()
def reconstructed_mels(model: ConversionModel, features: Sequence[UtteranceFeatures],
                       progress: bool = True) -> list[torch.Tensor]:
    """Each utterance converted by `model` to its own speaker: what the model really outputs."""
    per_speaker = speaker_embeddings(features)
    silence = math.log(model.mel.log_floor) if model.mel.compression == "log" else 0.0
    out = []
    for f in tqdm(features, desc="model mels", unit="utt", disable=not progress):
        embedding = per_speaker[f.speaker_index][None] if model.speaker_input == "embedding" else None
        speaker = model.speaker([f.mel], embedding)
        frames = f.mel.shape[-1]
        padded = -(-frames // model.frame_multiple) * model.frame_multiple
        mel = torch.nn.functional.pad(f.mel, (0, padded - frames), value=silence)
        out.append(model.convert(mel[None], speaker[None], speaker[None])[0, :, :frames].float())
    return out


def vocoder_items(features: Sequence[UtteranceFeatures], waves: Sequence[torch.Tensor],
                  mels: Sequence[torch.Tensor] | None = None) -> list[VocoderItem]:
    if mels is None:
        mels = [f.mel for f in features]
    return [VocoderItem(f.utterance.path.name, m, w) for f, w, m in zip(features, waves, mels)]


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

    def _segment(self, item: VocoderItem, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        frames, hop = self.frames, self.hop
        available = min(item.mel.shape[-1], item.wav.shape[-1] // hop)
        start = int(torch.randint(0, max(1, available - frames + 1), (1,), generator=generator))
        mel = item.mel[:, start:start + frames]
        wav = item.wav[start * hop:(start + frames) * hop]
        mel = torch.nn.functional.pad(mel, (0, frames - mel.shape[-1]), value=self.silence)
        wav = torch.nn.functional.pad(wav, (0, frames * hop - wav.shape[-1]))
        return mel, wav

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step * 31 + self.rank)
        picks = torch.randint(0, len(self.items), (self.batch_size,), generator=generator)
        pairs = [self._segment(self.items[int(i)], generator) for i in picks]
        return {"mel": torch.stack([p[0] for p in pairs]), "wav": torch.stack([p[1] for p in pairs])}

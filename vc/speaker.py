"""GE2E speaker encoder: speech -> 256-d unit-norm embedding of the voice.

The network is the one of Wan et al. (2018) as trained by Resemblyzer (3-layer LSTM over
40-band mel power frames, linear + ReLU, L2 norm). Its trained weights ship inside the
`resemblyzer` pip package; we load them strictly into our own module, so nothing is
downloaded and the package's own code (and its webrtcvad import at module level) is not needed
to embed. Preprocessing and partial-utterance averaging follow Resemblyzer, which is what the
weights were trained for.

Weights trained or fine-tuned with voicelab (`python -m training speaker-encoder`) are a model
folder like every other voicelab model (`GE2EModel`, model_type "ge2e");
`SpeakerEncoder.from_pretrained(folder_or_repo)` loads them into the same encoder.
"""
from __future__ import annotations

import importlib.util
import re
import warnings
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from .audio import AudioSource, load_audio
from .errors import AudioError, CheckpointError
from .hub import HubModel
from .mel import MelConfig, MelSpectrogram

SAMPLE_RATE = 16000
PARTIAL_FRAMES = 160  # 1.6 s windows, as the encoder was trained
HOP = 160
# librosa.feature.melspectrogram's defaults with a 25 ms window and 10 ms hop, power spectrum.
ENCODER_MEL = MelConfig(sample_rate=SAMPLE_RATE, n_fft=400, hop_length=HOP, n_mels=40,
                        fmin=0.0, fmax=8000.0, power=2.0, center=True, pad_mode="constant",
                        compression="none")


def resemblyzer_weights_path() -> Path:
    """Where the resemblyzer package keeps its trained `pretrained.pt` (not importing it)."""
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError("the speaker encoder's weights come with the 'resemblyzer' package; "
                              "install it with: pip install resemblyzer")
    return Path(list(spec.submodule_search_locations)[0]) / "pretrained.pt"


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors."""
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


class SpeakerEncoder(nn.Module):
    """GE2E encoder. `embed(clip)` and `embed_many(clips)` return unit vectors (256,).

    Args:
        mel_bands, hidden, layers, embedding: network sizes (40, 256, 3, 256 for the released
            weights).
    """

    sample_rate = SAMPLE_RATE

    def __init__(self, mel_bands: int = 40, hidden: int = 256, layers: int = 3,
                 embedding: int = 256):
        super().__init__()
        self.lstm = nn.LSTM(mel_bands, hidden, layers, batch_first=True)
        self.linear = nn.Linear(hidden, embedding)
        # GE2E's learned scale and offset of the similarity matrix (used by its training loss).
        self.similarity_weight = nn.Parameter(torch.tensor([10.0]))
        self.similarity_bias = nn.Parameter(torch.tensor([-5.0]))
        self.mel = MelSpectrogram(ENCODER_MEL)

    @classmethod
    def pretrained(cls, device: str | torch.device = "cpu",
                   weights: str | Path | None = None) -> "SpeakerEncoder":
        """The trained GE2E weights that the resemblyzer pip package ships (or a file of the
        same format, a dict with a 'model_state' state dict, given as `weights`)."""
        path = Path(weights) if weights is not None else resemblyzer_weights_path()
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
            state = checkpoint["model_state"]
        except Exception as error:
            raise CheckpointError(f"could not read the speaker encoder weights at '{path}' "
                                  f"({error}); reinstall resemblyzer") from None
        encoder = cls()
        try:
            encoder.load_state_dict(state)
        except RuntimeError as error:
            raise CheckpointError(f"speaker encoder weights at '{path}' do not match the "
                                  f"network: {error}") from None
        return encoder.to(device).eval()

    @classmethod
    def from_pretrained(cls, name: str | Path, revision: str | None = None,
                        device: str | torch.device = "cpu", cache_dir: str | Path | None = None,
                        *, token: str | bool | None = None) -> "SpeakerEncoder":
        """GE2E weights published by voicelab (a "ge2e" model folder, a `checkpoints/` name or
        a Hub repo id, resolved as `vc.hub.HubModel.from_pretrained` does), or "resemblyzer"
        for the weights of `pretrained()`. Loads strictly; comes back in eval mode."""
        if str(name) == "resemblyzer":
            return cls.pretrained(device=device)
        return GE2EModel.from_pretrained(name, revision, device, cache_dir, token=token).encoder

    @property
    def sizes(self) -> dict[str, int]:
        """The network sizes, as the constructor takes them."""
        return {"mel_bands": self.lstm.input_size, "hidden": self.lstm.hidden_size,
                "layers": self.lstm.num_layers, "embedding": self.linear.out_features}

    @property
    def device(self) -> torch.device:
        return self.linear.weight.device

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        """Mel power frames (B, frames, 40) -> unit embeddings (B, 256)."""
        _, (hidden, _) = self.lstm(mels)
        raw = torch.relu(self.linear(hidden[-1]))
        return raw / torch.norm(raw, dim=1, keepdim=True).clamp_min(1e-12)

    def _partials(self, wav: np.ndarray, rate: float, min_coverage: float) -> torch.Tensor:
        """Mel frames of the overlapping 1.6 s windows that cover a clip (N, 160, 40)."""
        n_frames = int(np.ceil((len(wav) + 1) / HOP))
        step = int(np.round((SAMPLE_RATE / rate) / HOP))
        starts = list(range(0, max(1, n_frames - PARTIAL_FRAMES + step + 1), step))
        coverage = (len(wav) - starts[-1] * HOP) / (PARTIAL_FRAMES * HOP)
        if coverage < min_coverage and len(starts) > 1:
            starts = starts[:-1]
        needed = (starts[-1] + PARTIAL_FRAMES) * HOP
        if needed >= len(wav):
            wav = np.pad(wav, (0, needed - len(wav)))
        mel = self.mel(torch.from_numpy(wav).to(self.device)).T  # (frames, 40)
        return torch.stack([mel[s:s + PARTIAL_FRAMES] for s in starts])

    @torch.inference_mode()
    def embed_prepared(self, wavs: Sequence[np.ndarray], rate: float = 1.3,
                       min_coverage: float = 0.75) -> np.ndarray:
        """Embeddings (N, 256) of clips already prepared by `prepare` (16 kHz float32)."""
        partials = [self._partials(np.asarray(w, dtype=np.float32), rate, min_coverage)
                    for w in wavs]
        embeds = self(torch.cat(partials)).cpu().numpy()
        out, start = [], 0
        for p in partials:
            mean = embeds[start:start + len(p)].mean(axis=0)
            out.append(mean / np.linalg.norm(mean))
            start += len(p)
        return np.stack(out).astype(np.float32)

    def prepare(self, source: AudioSource, source_rate: int | None = None) -> np.ndarray:
        """Load a clip as the encoder expects it: 16 kHz, level raised to -30 dBFS, long
        pauses removed. Refuses silent or empty clips."""
        audio = load_audio(source, SAMPLE_RATE, source_rate=source_rate)
        wav = audio.samples
        rms = float(np.sqrt(np.mean(wav.astype(np.float64) ** 2)))
        if rms < 1e-5:
            raise AudioError(f"{audio.name or 'the clip'} is silent; a speaker embedding needs "
                             "speech")
        gain_db = -30.0 - 20 * np.log10(rms)
        if gain_db > 0:  # raise quiet clips only, as the encoder was trained
            wav = wav * np.float32(10 ** (gain_db / 20))
        voiced = trim_long_silences(wav)
        if len(voiced) < SAMPLE_RATE // 4:
            raise AudioError(f"{audio.name or 'the clip'} has too little speech for a speaker "
                             "embedding (under 0.25 s); use a clip with at least a second of speech")
        return voiced

    def embed(self, source: AudioSource, source_rate: int | None = None) -> np.ndarray:
        """Unit-norm embedding (256,) of one clip (path, Audio, array with source_rate)."""
        return self.embed_prepared([self.prepare(source, source_rate)])[0]

    def embed_many(self, sources: Iterable[AudioSource]) -> np.ndarray:
        """One speaker from several clips: the renormalised mean of their unit embeddings."""
        embeds = self.embed_batch(sources)
        mean = embeds.mean(axis=0)
        return (mean / np.linalg.norm(mean)).astype(np.float32)

    def embed_batch(self, sources: Iterable[AudioSource]) -> np.ndarray:
        """Embeddings (N, 256) of N clips, one per clip, computed in one forward pass."""
        wavs = [self.prepare(s) for s in sources]
        if not wavs:
            raise AudioError("no clips given; pass at least one clip of the speaker")
        return self.embed_prepared(wavs)


class GE2EModel(HubModel):
    """GE2E speaker encoder (Wan et al., 2018): 3-layer LSTM over 40-band mel power frames of
    1.6 s partial utterances, a linear + ReLU layer and L2 normalisation, giving 256-d unit
    speaker embeddings; the similarity scale and offset of the GE2E loss travel with it.

    The publishable form of a `SpeakerEncoder` (`.encoder`); `SpeakerEncoder.from_pretrained`
    loads it. `GE2EModel.from_encoder(encoder)` wraps trained weights for `save_pretrained`.
    """

    model_type = "ge2e"
    card_tags = ("speaker-embedding", "speaker-verification", "ge2e")

    def __init__(self, *, mel_bands: int = 40, hidden: int = 256, layers: int = 3,
                 embedding: int = 256):
        super().__init__()
        self.encoder = SpeakerEncoder(mel_bands, hidden, layers, embedding)

    @classmethod
    def from_encoder(cls, encoder: SpeakerEncoder) -> "GE2EModel":
        """A copy of `encoder`'s weights (on the CPU) as a model that saves itself."""
        model = cls(**encoder.sizes)
        model.encoder.load_state_dict({k: v.detach().cpu() for k, v in encoder.state_dict().items()})
        return model.eval()

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        """Mel power frames (B, frames, 40) -> unit embeddings (B, 256)."""
        return self.encoder(mels)

    def _card_text(self, card) -> str:
        # The generic card shows `vc.hub.load_model`; people embed with SpeakerEncoder.
        text = super()._card_text(card)
        return re.sub(r'from vc\.hub import load_model\n(.*?\n)model = load_model\(("[^"\n]*")\)',
                      r'from vc.speaker import SpeakerEncoder\n\1encoder = SpeakerEncoder.'
                      r'from_pretrained(\2)\nembedding = encoder.embed("speech.wav")  # (256,) unit vector',
                      text, count=1, flags=re.DOTALL)


def trim_long_silences(wav: np.ndarray, window_ms: int = 30, smoothing: int = 8,
                       max_silence: int = 6) -> np.ndarray:
    """Drop pauses longer than `max_silence` VAD windows, as the encoder's training data was.

    Uses WebRTC's VAD (installed with resemblyzer); falls back to an energy gate without it.
    """
    window = window_ms * SAMPLE_RATE // 1000
    wav = wav[: len(wav) - len(wav) % window]
    if len(wav) == 0:
        return wav
    pcm = np.round(wav * 32767).clip(-32768, 32767).astype(np.int16)
    try:
        with warnings.catch_warnings():  # webrtcvad imports the deprecated pkg_resources
            warnings.simplefilter("ignore")
            import webrtcvad
        vad = webrtcvad.Vad(3)
        flags = np.array([vad.is_speech(pcm[i:i + window].tobytes(), SAMPLE_RATE)
                          for i in range(0, len(wav), window)], dtype=float)
    except ImportError:
        frames = wav.reshape(-1, window).astype(np.float64)
        level = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)
        flags = (level > level.max() - 40).astype(float)
    # Moving average over `smoothing` windows (centred like Resemblyzer), then dilation.
    padded = np.concatenate([np.zeros((smoothing - 1) // 2), flags, np.zeros(smoothing // 2)])
    sums = np.cumsum(padded)
    sums[smoothing:] = sums[smoothing:] - sums[:-smoothing]
    mask = np.round(sums[smoothing - 1:] / smoothing).astype(bool)
    from scipy.ndimage import binary_dilation
    mask = binary_dilation(mask, np.ones(max_silence + 1))
    return wav[np.repeat(mask, window)]

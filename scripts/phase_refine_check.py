"""Would Griffin-Lim iterations seeded with hifigan-fast's own phase mend its frame-rate buzz?

    python scripts/dev_protocol.py --shift-cents 250 --out runs/dev-shifted.json
    python scripts/phase_refine_check.py [--protocol runs/dev-shifted.json] [--trials 12] [--iterations 4 16 32]

The fast vocoder predicts a magnitude and a phase per STFT bin and frame and overlap-adds them;
trained on the mel loss alone its frames' phases disagree, and on converted mels pYIN hears a
62.5 Hz buzz (the frame rate) instead of the voice's pitch. Here each default conversion's mel
(transcript-guided phones, phone matching, no adaptation) is vocoded by hifigan-fast as it is,
by its magnitude with N fast Griffin-Lim iterations starting from its phase, and by
Griffin-Lim-32 from the mel; each output is scored for similarity to the reference (GE2E),
Whisper-base WER against the source text, DNSMOS OVRL, and pYIN's median F0 against the
reference's (within 2 semitones) and the frame rate (within half a semitone).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from eval.intelligibility import error_rates  # noqa: E402
from eval.naturalness import DnsMos  # noqa: E402
from vc import VoiceConverter  # noqa: E402
from vc.asr import Whisper  # noqa: E402
from vc.audio import load_audio  # noqa: E402
from vc.phone_matching import PhoneMeanMatching  # noqa: E402
from vc.pipeline import load_vocoder, vocode  # noqa: E402
from vc.pitch import f0_contour  # noqa: E402
from vc.speaker import SpeakerEncoder, cosine  # noqa: E402
from vc.transcript_phones import TranscriptPhones  # noqa: E402


class PhaseRefined(nn.Module):
    """An inverse-STFT HiFi-GAN's magnitude, its phase refined by fast Griffin-Lim."""

    def __init__(self, hifigan: nn.Module, iterations: int, momentum: float = 0.99):
        super().__init__()
        self.hifigan, self.iterations, self.momentum = hifigan, iterations, momentum
        self.mel, self.sample_rate = hifigan.mel, hifigan.sample_rate

    @torch.inference_mode()
    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        squeeze = mel.dim() == 2
        g = self.hifigan
        log_magnitude, phase = g.spectrum(mel[None] if squeeze else mel)
        magnitude = torch.exp(log_magnitude.float())
        angles = torch.polar(torch.ones_like(magnitude), phase.float())
        frames = magnitude.shape[-1]
        stft = dict(n_fft=g.istft_n_fft, hop_length=g.istft_hop, window=g.istft_window, center=True)
        previous = torch.zeros_like(angles)
        for _ in range(self.iterations):
            wav = torch.istft(magnitude * angles, length=frames * g.istft_hop, **stft)
            rebuilt = torch.stft(wav, return_complex=True, **stft)[..., :frames]
            angles = rebuilt - (self.momentum / (1 + self.momentum)) * previous
            previous = rebuilt
            angles = angles / angles.abs().clamp_min(1e-8)
        wav = torch.istft(magnitude * angles, length=frames * g.istft_hop, **stft)
        return wav[0] if squeeze else wav


def median_f0(samples: np.ndarray, rate: int, hop: int) -> float:
    f0 = f0_contour(samples, rate, hop)
    return float(np.nanmedian(f0)) if np.isfinite(f0).any() else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", default="runs/dev-shifted.json")
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--iterations", type=int, nargs="+", default=[4, 16, 32])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    protocol = Path(args.protocol)
    trials = json.loads(protocol.read_text())["trials"][:args.trials]
    hifigan = load_vocoder("hifigan-fast")
    converter = VoiceConverter.from_pretrained("ppgvc-small", vocoder=hifigan, transcript=TranscriptPhones("base"),
                                               phone_matching=PhoneMeanMatching())
    rate, hop = converter.sample_rate, converter.mel_config.hop_length
    vocoders = {"hifigan-fast": hifigan, **{f"refined-{n}": PhaseRefined(hifigan, n) for n in args.iterations},
                "griffinlim-32": load_vocoder("griffinlim", converter.mel_config)}
    encoder, asr, dnsmos = SpeakerEncoder.pretrained(), Whisper("base"), DnsMos(threads=args.threads)
    scores = {name: {"sim": [], "ovrl": [], "hyp": [], "near": 0, "buzz": 0} for name in vocoders}
    texts = []
    for trial in trials:
        source = (protocol.parent / trial["source_path"]).resolve()
        reference = load_audio((protocol.parent / trial["reference_paths"][0]).resolve())
        mels = []
        plain_vocode = converter.vocode
        converter.vocode = lambda mel, **kw: (mels.append(mel), plain_vocode(mel, **kw))[1]  # keep the mel
        try:
            converter.convert(source, reference)
        finally:
            converter.vocode = plain_vocode
        target = encoder.embed(reference)
        reference_f0 = median_f0(reference.resample(rate).samples, rate, hop)
        texts.append(trial["source_text"])
        for name, vocoder in vocoders.items():
            audio = vocode(vocoder, mels[0], converter.mel_config)
            s = scores[name]
            s["sim"].append(cosine(encoder.embed(audio), target))
            s["ovrl"].append(dnsmos.rate(audio)["dnsmos_ovrl"])
            s["hyp"].append(asr.transcribe(audio))
            f0 = median_f0(audio.samples, rate, hop)
            if np.isfinite(f0):
                s["near"] += abs(12 * np.log2(f0 / reference_f0)) <= 2
                s["buzz"] += abs(12 * np.log2(f0 / (rate / hop))) <= 0.5
        print(trial["trial_id"], " ".join(f"{n} {s['sim'][-1]:.3f}/{s['ovrl'][-1]:.2f}"
                                          for n, s in scores.items()), flush=True)
    print(f"\n{len(trials)} trials: similarity, Whisper WER, DNSMOS OVRL, median F0 near the reference's, "
          "at the frame rate")
    for name, s in scores.items():
        wer = error_rates(texts, s["hyp"])["wer"]
        print(f"  {name:14s} {np.mean(s['sim']):.3f}  {100 * wer:5.1f} %  {np.mean(s['ovrl']):.2f}  "
              f"{s['near']:3d}  {s['buzz']:3d}")


if __name__ == "__main__":
    main()

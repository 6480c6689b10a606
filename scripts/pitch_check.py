"""Does a chain's output carry the target's pitch? pYIN on its output against the reference.

    python scripts/dev_protocol.py                      # runs/dev.json: training speakers only
    python scripts/pitch_check.py [--trials 8] [--vocoders hifigan-fast griffinlim]

For each trial it prints the reference's median F0 and voiced fraction, then for every vocoder
the same for the source resynthesised and for the default conversion (transcript-guided phones,
phone matching). It counts the outputs whose median F0 sits within 2 semitones of the
reference's and those that track the frame rate instead (sample rate / hop, 62.5 Hz here): an
inverse-STFT vocoder trained on the mel loss alone renders an over-smoothed mel with a buzz at
the frame rate in place of the voice's harmonics, which pYIN then reports as the pitch.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from vc import VoiceConverter
from vc.audio import load_audio
from vc.phone_matching import PhoneMeanMatching
from vc.pitch import f0_contour
from vc.transcript_phones import TranscriptPhones


def pitch(samples: np.ndarray, rate: int, hop: int) -> tuple[float, float]:
    """(median F0 in Hz or NaN, voiced fraction) of a clip."""
    f0 = f0_contour(samples, rate, hop)
    voiced = np.isfinite(f0)
    return (float(np.median(f0[voiced])) if voiced.any() else float("nan")), float(voiced.mean())


def semitones(a: float, b: float) -> float:
    return abs(12 * np.log2(a / b)) if np.isfinite(a) and np.isfinite(b) else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", default="runs/dev.json")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--vocoders", nargs="+", default=["hifigan-fast", "griffinlim"])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    protocol = Path(args.protocol)
    trials = json.loads(protocol.read_text())["trials"][:args.trials]
    transcript = TranscriptPhones("base")
    chains = {v: VoiceConverter.from_pretrained("ppgvc-small", vocoder=v, transcript=transcript,
                                                phone_matching=PhoneMeanMatching()) for v in args.vocoders}
    any_chain = next(iter(chains.values()))
    rate, hop = any_chain.sample_rate, any_chain.mel_config.hop_length
    frame_rate = rate / hop
    counts = {(v, kind): [0, 0] for v in chains for kind in ("resynthesis", "conversion")}
    for trial in trials:
        source = (protocol.parent / trial["source_path"]).resolve()
        references = [(protocol.parent / p).resolve() for p in trial["reference_paths"]]
        ref_f0, ref_voiced = pitch(load_audio(references[0]).resample(rate).samples, rate, hop)
        line = [f"{trial['trial_id']} reference {ref_f0:5.0f} Hz voiced {ref_voiced:.2f}"]
        source_audio = load_audio(source).resample(rate)
        expected = {"resynthesis": pitch(source_audio.samples, rate, hop)[0], "conversion": ref_f0}
        for name, chain in chains.items():
            with torch.inference_mode():
                mel = chain.mel(source_audio.to_tensor())
            outputs = {"resynthesis": chain.vocode(mel).samples,
                       "conversion": chain.convert(source, references).samples}
            for kind, samples in outputs.items():
                f0, voiced = pitch(samples, rate, hop)
                counts[(name, kind)][0] += semitones(f0, expected[kind]) <= 2
                counts[(name, kind)][1] += semitones(f0, frame_rate) <= 0.5
                line.append(f"{name} {kind} {f0:5.0f} Hz voiced {voiced:.2f}")
        print(" | ".join(line), flush=True)
    print(f"\nof {len(trials)} trials: median F0 within 2 semitones of the reference's (conversion) or the "
          f"source's (resynthesis), and at the frame rate ({frame_rate:.1f} Hz)")
    for (name, kind), (near, at_frame_rate) in counts.items():
        print(f"  {name:14s} {kind:12s} {near:3d} near   {at_frame_rate:3d} at the frame rate")


if __name__ == "__main__":
    main()

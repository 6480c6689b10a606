"""`python -m vc` (or `voicelab`): command-line tools over the library."""
from __future__ import annotations

import argparse
import itertools
import sys

from .errors import VoicelabError


def _similarity(args: argparse.Namespace) -> None:
    from .speaker import SpeakerEncoder, cosine
    encoder = SpeakerEncoder.pretrained()
    embeds = {path: encoder.embed(path) for path in args.clips}
    for a, b in itertools.combinations(args.clips, 2):
        print(f"{cosine(embeds[a], embeds[b]):.4f}  {a}  {b}")


def _resynthesize(args: argparse.Namespace) -> None:
    import torch
    from .audio import Audio, prepare_speech
    from .mel import MelConfig, MelSpectrogram
    from .pipeline import load_vocoder
    from .vocoders import GriffinLim
    if args.vocoder in ("griffinlim", "gl"):
        vocoder = GriffinLim(MelConfig(), n_iter=args.iterations)
    else:  # a trained vocoder brings its own mel settings
        vocoder = load_vocoder(args.vocoder)
    config = vocoder.mel
    clip = prepare_speech(args.source, config.sample_rate)
    with torch.inference_mode():
        mel = MelSpectrogram(config)(clip.to_tensor())
        wav = vocoder.generate(mel) if hasattr(vocoder, "generate") else vocoder(mel)
    out = Audio(wav.float().numpy(), config.sample_rate).save(args.out)
    print(f"wrote {out} ({len(wav) / config.sample_rate:.2f} s)")


def _convert(args: argparse.Namespace) -> None:
    from tqdm.auto import tqdm
    from .pipeline import VoiceConverter
    converter = VoiceConverter.from_pretrained(args.model, vocoder=args.vocoder, device=args.device)
    with tqdm(total=100, desc="convert", unit="%") as bar:
        def progress(fraction: float, _what: str) -> None:
            bar.update(round(100 * fraction) - bar.n)
        audio = converter.convert(args.source, args.reference, progress=progress)
    print(f"wrote {audio.save(args.out)} ({audio.duration:.2f} s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="voicelab", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    sim = commands.add_parser("similarity", help="speaker-encoder cosine between clips")
    sim.add_argument("clips", nargs="+", help="two or more audio files")
    sim.set_defaults(run=_similarity)
    gl = commands.add_parser("resynthesize", help="mel + vocoder round trip of a clip")
    gl.add_argument("source")
    gl.add_argument("--out", required=True)
    gl.add_argument("--vocoder", default="griffinlim",
                    help="griffinlim, or a vocoder's checkpoints/ name, folder, run or repo id")
    gl.add_argument("--iterations", type=int, default=32, help="Griffin-Lim iterations")
    gl.set_defaults(run=_resynthesize)
    conv = commands.add_parser("convert", help="speak a source clip in a reference voice")
    conv.add_argument("--model", required=True,
                      help="a checkpoints/ name, a model or training-run folder, or a Hub repo id")
    conv.add_argument("--source", required=True, help="the speech to convert")
    conv.add_argument("--reference", required=True, nargs="+", help="clip(s) of the target voice")
    conv.add_argument("--out", required=True, help="output audio file (.wav, .flac, ...)")
    conv.add_argument("--vocoder", default="griffinlim", help="griffinlim or a vocoder model")
    conv.add_argument("--device", default="cpu")
    conv.set_defaults(run=_convert)
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except VoicelabError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

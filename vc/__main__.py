"""`python -m vc` (or `voicelab`): command-line tools over the library."""
from __future__ import annotations

import argparse
import itertools
import sys

from .errors import VoicelabError

# the phones of the shipped default converter and cloner (models.json); a test keeps the two in step
DEFAULT_GUIDE = "base+encoder:whisper-phones"


def _similarity(args: argparse.Namespace) -> None:
    from .speaker import SpeakerEncoder, cosine
    encoder = SpeakerEncoder.pretrained()
    embeds = {path: encoder.embed(path) for path in args.clips}
    for a, b in itertools.combinations(args.clips, 2):
        print(f"{cosine(embeds[a], embeds[b]):.4f}  {a}  {b}")


def _positive(kind: type, low: float = 0.0):
    """An argparse type: an int/float above `low` (at least 1 for ints)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or value != value or value in (float("inf"), float("-inf")) or \
                (value < 1 if kind is int else value <= low):
            wanted = "a whole number of at least 1" if kind is int else f"a number above {low:g}"
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}")
        return value
    return parse


def _count(most: int):
    """An argparse type: a whole number from 0 to `most`."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = -1
        if not 0 <= value <= most:
            raise argparse.ArgumentTypeError(f"must be a whole number from 0 to {most}, got {text!r}")
        return value
    return parse


def _check_inputs(*paths: str) -> None:
    """Fail before any model loads on an input path that does not exist."""
    from pathlib import Path
    from .errors import AudioError
    for path in paths:
        if not Path(path).exists():
            raise AudioError(f"no such file: '{path}'")


def _limits(args: argparse.Namespace, default=None):
    from .audio import SpeechLimits
    if args.max_seconds is None:
        return default if default is not None else SpeechLimits()
    return SpeechLimits(max_duration=args.max_seconds)


def _resynthesize(args: argparse.Namespace) -> None:
    import torch
    from .audio import Audio, check_output_path, prepare_speech
    from .mel import MelConfig, MelSpectrogram
    from .pipeline import load_vocoder
    from .vocoders import GriffinLim
    check_output_path(args.out)
    _check_inputs(args.source)
    if args.vocoder in ("griffinlim", "gl"):
        vocoder = GriffinLim(MelConfig(), n_iter=args.iterations)
    else:  # a trained vocoder brings its own mel settings
        vocoder = load_vocoder(args.vocoder)
    config = vocoder.mel
    clip = prepare_speech(args.source, config.sample_rate, _limits(args))
    with torch.inference_mode():
        mel = MelSpectrogram(config)(clip.to_tensor())
        wav = vocoder.generate(mel) if hasattr(vocoder, "generate") else vocoder(mel)
    out = Audio(wav.float().numpy(), config.sample_rate).save(args.out)
    print(f"wrote {out} ({len(wav) / config.sample_rate:.2f} s)")


def _convert(args: argparse.Namespace) -> None:
    from tqdm.auto import tqdm
    from .audio import SpeechLimits, check_output_path
    from .devices import check_device
    from .pipeline import VoiceConverter
    check_output_path(args.out)
    device = check_device(args.device)
    _check_inputs(args.source, *args.reference)
    limits = {"source_limits": _limits(args),
              "reference_limits": _limits(args, SpeechLimits(max_duration=120.0))}
    from .adaptation import ReferenceAdaptation
    from .hub import load_model
    from .phone_matching import PhoneMeanMatching
    from .pipeline import resolve_run_folder
    from .encoder_phones import phone_guide
    model = load_model(resolve_run_folder(args.model), device=device)
    # guidance, matching and adaptation apply to the models that can take them (the phonetic converter)
    transcript = None if args.transcript == "none" else phone_guide(args.transcript)
    matching = PhoneMeanMatching() if args.phone_matching and getattr(model, "accepts_phone_labels", False) else None
    adaptation = None
    if args.adapt_steps and hasattr(model, "adaptation_example"):
        adaptation = ReferenceAdaptation(steps=args.adapt_steps, modules=tuple(args.adapt_modules))
    converter = VoiceConverter(model, vocoder=args.vocoder, device=device, transcript=transcript,
                               phone_matching=matching, adaptation=adaptation, **limits)
    with tqdm(total=100, desc="convert", unit="%") as bar:
        def progress(fraction: float, _what: str) -> None:
            bar.update(round(100 * fraction) - bar.n)
        audio = converter.convert(args.source, args.reference, progress=progress)
    print(f"wrote {audio.save(args.out)} ({audio.duration:.2f} s)")


def _clone(args: argparse.Namespace) -> None:
    from tqdm.auto import tqdm
    from .audio import SpeechLimits, check_output_path
    from .cloning import VoiceCloner, check_rate
    from .devices import check_device
    from .text import TextError
    check_output_path(args.out)
    check_rate(args.rate)
    device = check_device(args.device)
    _check_inputs(*args.reference)
    if args.text_file:
        from pathlib import Path
        try:
            args.text = Path(args.text_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise TextError(f"cannot read the text file '{args.text_file}': {error}; give a UTF-8 "
                            "text file") from None
    matching = {}
    if args.phone_matching:
        from .encoder_phones import phone_guide
        from .phone_matching import PhoneMeanMatching
        matching = {"phone_matching": PhoneMeanMatching(), "transcript": phone_guide(args.transcript)}
    if args.adapt_steps:
        from .adaptation import ReferenceAdaptation
        from .encoder_phones import phone_guide
        matching.setdefault("transcript", phone_guide(args.transcript))
        matching["adaptation"] = ReferenceAdaptation(steps=args.adapt_steps)
    cloner = VoiceCloner.from_pretrained(args.model, vocoder=args.vocoder, device=device,
                                         reference_limits=_limits(args, SpeechLimits(max_duration=120.0)),
                                         max_chars=args.max_chars, **matching)
    cloner.sentences(args.text)  # text problems are reported before the reference is read
    with tqdm(total=100, desc="clone", unit="%") as bar:
        def progress(fraction: float, _what: str) -> None:
            bar.update(round(100 * fraction) - bar.n)
        audio = cloner.speak(args.text, args.reference, rate=args.rate, progress=progress)
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
    gl.add_argument("--iterations", type=_positive(int), default=32, help="Griffin-Lim iterations")
    gl.add_argument("--max-seconds", type=_positive(float), metavar="SECONDS",
                    help="longest clip accepted (default 600)")
    gl.set_defaults(run=_resynthesize)
    conv = commands.add_parser("convert", help="speak a source clip in a reference voice")
    conv.add_argument("--model", required=True,
                      help="a checkpoints/ name, a model or training-run folder, or a Hub repo id")
    conv.add_argument("--source", required=True, help="the speech to convert")
    conv.add_argument("--reference", required=True, nargs="+", help="clip(s) of the target voice")
    conv.add_argument("--out", required=True, help="output audio file (.wav, .flac, ...)")
    conv.add_argument("--vocoder", default="griffinlim", help="griffinlim or a vocoder model")
    conv.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps")
    conv.add_argument("--max-seconds", type=_positive(float), metavar="SECONDS",
                      help="longest source and reference clip accepted (default 600 s for the "
                           "source, 120 s for each reference)")
    conv.add_argument("--transcript", default=DEFAULT_GUIDE, metavar="GUIDE",
                      help="phonetic models: where the phones come from: SIZE+encoder[:HEAD] (default "
                           f"{DEFAULT_GUIDE}, as the demo's default: the phone head reading Whisper-SIZE's "
                           "encoder, leaning toward its forced-aligned transcript), a Whisper size or folder "
                           "(its transcript alone, forced-aligned), encoder[:HEAD] (the head alone: 2x faster, "
                           "more lost words), or none (the model's own recogniser, which loses most words)")
    conv.add_argument("--no-phone-matching", dest="phone_matching", action="store_false",
                      help="phonetic models: do not match each phone's spectrum to the reference's")
    conv.add_argument("--adapt-steps", type=_count(500), default=40, metavar="N",
                      help="phonetic models: train a copy of the model N steps on the reference first "
                           "(default 40: closer to the voice, a few seconds more; 0: as trained)")
    conv.add_argument("--adapt-modules", nargs="+", default=["decoder.out", "decoder.postnet"], metavar="NAME",
                      help="the modules that adapt (default: the decoder's output layer and post-net, "
                           "which keep the words; 'decoder' adapts all of it, closer to the voice)")
    conv.set_defaults(run=_convert)
    clone = commands.add_parser("clone", help="say typed text in the voice of a reference clip")
    clone.add_argument("--model", required=True,
                       help="a synthesizer: checkpoints/ name, model or training-run folder, or Hub repo id")
    words = clone.add_mutually_exclusive_group(required=True)
    words.add_argument("--text", help="what to say (several sentences are fine)")
    words.add_argument("--text-file", metavar="FILE", help="read what to say from a UTF-8 text file")
    clone.add_argument("--reference", required=True, nargs="+", help="clip(s) of the voice to clone")
    clone.add_argument("--out", required=True, help="output audio file (.wav, .flac, ...)")
    clone.add_argument("--vocoder", default="griffinlim", help="griffinlim or a vocoder model")
    clone.add_argument("--rate", type=_positive(float), default=1.0,
                       help="speaking rate: 1 natural, 1.25 a quarter faster (0.5 to 2)")
    clone.add_argument("--max-chars", type=_positive(int), default=1000, help="longest text accepted")
    clone.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps")
    clone.add_argument("--max-seconds", type=_positive(float), metavar="SECONDS",
                       help="longest reference clip accepted (default 120 s)")
    clone.add_argument("--no-phone-matching", dest="phone_matching", action="store_false",
                       help="do not match each phone's spectrum to the reference's (with --adapt-steps 0 "
                            "as well, no Whisper is needed)")
    clone.add_argument("--adapt-steps", type=_count(500), default=40, metavar="N",
                       help="train a copy of the synthesizer N steps on the reference first (default 40, as the "
                            "demo's default cloner: closer to the voice, a few seconds more the first time a voice "
                            "is used; 0: as trained, about 5x faster)")
    clone.add_argument("--transcript", default=DEFAULT_GUIDE, metavar="GUIDE",
                       help="what labels the reference's phones for matching and adaptation: SIZE+encoder[:HEAD] "
                            f"(default {DEFAULT_GUIDE}: the phone head leaning toward Whisper's aligned "
                            "transcript), a Whisper size or folder (its transcript alone, forced-aligned) or "
                            "encoder[:HEAD] (the head alone, faster)")
    clone.set_defaults(run=_clone)
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except (VoicelabError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

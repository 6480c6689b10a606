"""python -m training: train a model family, or import released weights.

    python -m training autovc --data corpus/ ../shared/real-speech/librispeech/train-clean-100 \\
        --config small --steps 2000 --out runs/autovc-small [--resume] [--push-to-hub me/autovc]
    python -m training hifigan --data corpus/ --config fast --steps 20000 --out runs/hifigan-fast \\
        [--mels-from runs/vqvc-small]
    python -m training speaker-encoder --data ../shared/real-speech/librispeech/train-clean-100 \\
        data/train/corpus-big-train.jsonl --config finetune --init resemblyzer --steps 200 \\
        --eval-data ../shared/real-speech/librispeech/test-other ../shared/real-speech/vctk \\
        --out runs/speaker-encoder-ft [--resume]
    python -m training synthesizer --data data/piper/manifest.jsonl data/aligned/ljspeech-train.jsonl \\
        --config training/configs/synthesizer-small-cpu.json --steps 4000 --out runs/synth-small
    python -m training whisper-phones --data data/aligned/ljspeech-train.jsonl --steps 3000 \\
        --out runs/whisper-phones      # phones from Whisper's encoder, for fast conversion
    python -m training import-autovc autovc.ckpt --out checkpoints/autovc-paper
    python -m training import-hifigan g_02500000 --config config.json --out checkpoints/hifigan-v1
"""
from __future__ import annotations

import argparse
import sys

from vc.errors import VoicelabError

FAMILIES = ("autovc", "vqvc", "vqvae", "ppgvc")
VOCODERS = ("hifigan", "ddsp")
# command -> the model_type it trains (text-to-mel synthesizers)
SYNTHESIZERS = {"synthesizer": "duration-synth"}


def _number(kind: str, low, high=None):
    """An argparse type: a number of `kind` in the range `check_range` takes, else a message
    with the range that works."""
    def parse(text: str):
        from .config import check_range
        try:
            value = int(text) if kind == "int" else float(text)
        except ValueError:
            value = text
        try:
            check_range("it", value, low, high, kind)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error).replace("it must", "must", 1)) from None
        return value
    return parse


def _train(args: argparse.Namespace) -> None:
    import dataclasses
    from vc.errors import CheckpointError
    from .config import load_run_config
    run = load_run_config(SYNTHESIZERS.get(args.family, args.family), args.config)
    overrides = {name: getattr(args, name) for name in (
        "seed", "batch_size", "checkpoint_every", "sample_every", "validate_every", "log_every", "init_from")
        if getattr(args, name) is not None}
    run.train = dataclasses.replace(run.train, **overrides)  # checks the settings again
    options = dict(resume=args.resume, cache_dir=args.cache, push_to_hub=args.push_to_hub,
                   push_every=args.push_every, mixed_precision=args.mixed_precision,
                   progress=not args.quiet)
    if args.family in VOCODERS:
        from .vocoder_loop import VocoderTrainer
        trainer = VocoderTrainer(run, args.data, args.out, args.steps, mels_from=args.mels_from,
                                 match_phones=args.match_phones, **options)
    elif args.family in SYNTHESIZERS:
        from .synth_loop import SynthesizerTrainer
        trainer = SynthesizerTrainer(run, args.data, args.out, args.steps, **options)
    else:
        from .loop import Trainer
        trainer = Trainer(run, args.data, args.out, args.steps, **options)
    folder = trainer.train()
    if not (folder / "config.json").is_file():
        raise CheckpointError(f"training ended without publishing weights in {folder}: the run "
                              f"was already at step {args.steps} or beyond; give a larger --steps")
    print(f"published weights: {folder}")


def _speaker_encoder(args: argparse.Namespace) -> None:
    from .speaker_encoder import SpeakerEncoderTrainer, load_speaker_encoder_config
    overrides = {name: getattr(args, name) for name in (
        "init", "speakers_per_batch", "utterances_per_speaker", "lr", "seed", "log_every",
        "validate_every", "umap_every", "checkpoint_every")}
    config = load_speaker_encoder_config(args.config, **overrides)
    trainer = SpeakerEncoderTrainer(config, args.data, args.out, args.steps,
                                    eval_data=args.eval_data or (), resume=args.resume,
                                    cache_dir=args.cache, device=args.device,
                                    push_to_hub=args.push_to_hub, progress=not args.quiet)
    folder = trainer.train()
    print(f"published weights: {folder}")


def _add_speaker_encoder(commands) -> None:
    p = commands.add_parser("speaker-encoder", help="train or fine-tune the GE2E speaker encoder")
    p.set_defaults(run=_speaker_encoder)
    p.add_argument("--data", nargs="+", required=True,
                   help="corpus folders or manifests, mixed (as for the other families)")
    p.add_argument("--eval-data", nargs="+", metavar="CORPUS",
                   help="speakers never trained on, only measured: held-out EER each validation")
    p.add_argument("--config", default="finetune", help="tiny, finetune, or a .json file")
    p.add_argument("--init", help="resemblyzer (fine-tune the shipped weights), scratch, or a "
                                  "ge2e model folder / Hub repo id (default: the config's)")
    p.add_argument("--steps", type=_number("int", 1), required=True, help="train until this step")
    p.add_argument("--out", required=True, help="the run folder")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--cache", help="feature cache folder (default: next to --out)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, mps")
    p.add_argument("--push-to-hub", metavar="REPO_ID", help="publish the final weights")
    p.add_argument("--speakers-per-batch", type=_number("int", 2), metavar="N")
    p.add_argument("--utterances-per-speaker", type=_number("int", 2), metavar="M")
    p.add_argument("--lr", type=_number("float", "<0"))
    p.add_argument("--seed", type=_number("int", 0))
    for name in ("log-every", "validate-every", "checkpoint-every"):
        p.add_argument(f"--{name}", type=_number("int", 1), metavar="STEPS")
    p.add_argument("--umap-every", type=_number("int", 0), metavar="STEPS",
                   help="UMAP plot of held-out embeddings every N steps (0: none)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _whisper_phones(args: argparse.Namespace) -> None:
    from .whisper_phones import WhisperPhonesConfig, WhisperPhonesTrainer
    settings = {name: getattr(args, name) for name in (
        "preset", "whisper", "tail_seconds", "lm_weight", "batch_size", "crop_frames", "lr", "seed",
        "val_fraction", "log_every", "validate_every", "checkpoint_every") if getattr(args, name) is not None}
    trainer = WhisperPhonesTrainer(WhisperPhonesConfig(**settings), args.data, args.out, args.steps,
                                   resume=args.resume, cache_dir=args.cache, push_to_hub=args.push_to_hub,
                                   progress=not args.quiet)
    print(f"published weights: {trainer.train()}")


def _add_whisper_phones(commands) -> None:
    p = commands.add_parser("whisper-phones", help="train the phone head on Whisper's encoder "
                                                   "(fast phones for the phonetic converter)")
    p.set_defaults(run=_whisper_phones)
    p.add_argument("--data", nargs="+", required=True, help="corpora or manifests with phone alignments")
    p.add_argument("--steps", type=_number("int", 1), required=True, help="train until this step")
    p.add_argument("--out", required=True, help="the run folder")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--cache", help="encoder-feature cache folder (default: next to --out)")
    p.add_argument("--push-to-hub", metavar="REPO_ID", help="publish the final weights")
    p.add_argument("--preset", help="the head's size: tiny or small (default small)")
    p.add_argument("--whisper", help="the Whisper size whose encoder it reads (default base)")
    p.add_argument("--tail-seconds", type=_number("float", 0, 28), help="silence encoded after each clip (default 1)")
    p.add_argument("--lm-weight", type=_number("float", 0, 10),
                   help="the phone bigram's weight when decoding (default 0.3; 0: each frame's best phone)")
    p.add_argument("--batch-size", type=_number("int", 1))
    p.add_argument("--crop-frames", type=_number("int", 1), help="frames per batch item (50 per second)")
    p.add_argument("--lr", type=_number("float", "<0"))
    p.add_argument("--val-fraction", type=_number("float", 0, 0.99), help="speakers held out (default 0.05)")
    p.add_argument("--seed", type=_number("int", 0))
    for name in ("log-every", "validate-every", "checkpoint-every"):
        p.add_argument(f"--{name}", type=_number("int", 1), metavar="STEPS")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _import_autovc(args: argparse.Namespace) -> None:
    from vc.models.autovc import import_official_autovc
    model = import_official_autovc(args.checkpoint, freq=args.freq)
    card = {"description": "AutoVC (Qian et al., ICML 2019) with the weights released by its "
                           "authors, imported into voicelab's format. It was trained with the "
                           "authors' own speaker encoder, not GE2E/Resemblyzer: expect poor "
                           "conversions with voicelab's embeddings until fine-tuned.",
            "datasets": ["CSTR-Edinburgh/vctk"], "license": "mit",
            "training": {"source": "official AutoVC release (autovc.ckpt)"}}
    print(f"imported: {model.save_pretrained(args.out, card=card)}")


def _import_hifigan(args: argparse.Namespace) -> None:
    from vc.vocoders.hifigan import import_official_hifigan
    model = import_official_hifigan(args.checkpoint, args.config)
    card = {"description": "HiFi-GAN generator (Kong et al., NeurIPS 2020) with officially "
                           "released weights, imported into voicelab's format.",
            "license": "mit", "training": {"source": f"official HiFi-GAN release ({args.checkpoint})"}}
    print(f"imported: {model.save_pretrained(args.out, card=card)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for family in FAMILIES + VOCODERS + tuple(SYNTHESIZERS):
        vocoder = family in VOCODERS
        kind = "vocoder" if vocoder else "text-to-mel model" if family in SYNTHESIZERS else "model"
        p = commands.add_parser(family, help=f"train a {family} {kind}")
        p.set_defaults(run=_train, family=family)
        p.add_argument("--data", nargs="+", required=True,
                       help="corpus folders or manifests (VCTK, LibriSpeech/LibriTTS, a folder "
                            "per speaker, a .jsonl/.csv manifest, a synthetic corpus); mixed")
        p.add_argument("--config", default="fast" if vocoder else "small",
                       help="tiny, fast, v3, v2, v1, or a .json file" if vocoder
                       else "small, paper, or a .json file")
        if vocoder:
            p.add_argument("--mels-from", metavar="RUN_OR_MODEL", nargs="+",
                           help="train on these conversion models' or synthesizers' reconstructions "
                                "of the training utterances instead of their true mels (fine-tuning); "
                                "several are pooled, and 'truth' adds the true mels")
            p.add_argument("--match-phones", action="store_true",
                           help="match each reconstruction phone by phone to its utterance, as the "
                                "demo's default chains match to the reference")
        p.add_argument("--steps", type=_number("int", 1), required=True, help="train until this step")
        p.add_argument("--out", required=True, help="the run folder")
        p.add_argument("--resume", action="store_true", help="continue the run in --out")
        p.add_argument("--cache", help="feature cache folder (default: next to --out)")
        p.add_argument("--push-to-hub", metavar="REPO_ID", help="publish the final weights")
        p.add_argument("--push-every", type=_number("int", 0), default=0,
                       help="also publish every N steps (0: only at the end)")
        p.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"), default="no")
        p.add_argument("--seed", type=_number("int", 0))
        p.add_argument("--batch-size", type=_number("int", 1))
        p.add_argument("--init-from", metavar="MODEL",
                       help="start from this model's weights (folder, run or checkpoints/ name): fine-tuning")
        for name in ("checkpoint-every", "sample-every", "validate-every", "log-every"):
            p.add_argument(f"--{name}", type=_number("int", 1), metavar="STEPS")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_speaker_encoder(commands)
    _add_whisper_phones(commands)
    imp = commands.add_parser("import-autovc", help="convert the official AutoVC checkpoint")
    imp.add_argument("checkpoint", help="autovc.ckpt from the paper's repository")
    imp.add_argument("--out", required=True)
    imp.add_argument("--freq", type=_number("int", 1), default=32,
                     help="the code down-sampling factor it was trained with (not in the file)")
    imp.set_defaults(run=_import_autovc)
    hifi = commands.add_parser("import-hifigan", help="convert an official HiFi-GAN generator")
    hifi.add_argument("checkpoint", help="the generator file (a dict with a 'generator' state dict)")
    hifi.add_argument("--config", required=True, help="the config.json released with it")
    hifi.add_argument("--out", required=True)
    hifi.set_defaults(run=_import_hifigan)
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except (VoicelabError, ValueError, FileNotFoundError, FloatingPointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Vocoder benchmark: speed of every vocoder, and resynthesis quality of trained ones vs Griffin-Lim.

    python scripts/benchmark_vocoders.py --vocoders runs/hifigan-fast/model \\
        --sets synthetic=data/heldout-synth real-test-other=../shared/real-speech/librispeech/test-other \\
               real-vctk=../shared/real-speech/vctk --per-set 12 --threads 2 --out runs/vocoder-benchmark

Speed: seconds of audio generated per second of compute (higher is faster) on one 10 s mel,
for Griffin-Lim (32 iterations), each HiFi-GAN preset (untrained: speed does not depend on the
weights) and each given vocoder, all in the same run on `--threads` torch threads.
Quality: each clip of each set is turned into a mel and back by every vocoder; reported per set:
log-mel L1 and MCD (DTW) of the resynthesis against the original, and the speaker-encoder cosine
between original and resynthesis. Writes results.json, results.md and a bar chart to --out.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from eval.asr import load_recogniser  # noqa: E402
from eval.intelligibility import error_rates  # noqa: E402
from eval.metrics import mel_cepstral_distortion, mel_l1  # noqa: E402
from vc.audio import Audio, prepare_speech  # noqa: E402
from vc.data import read_corpus  # noqa: E402
from vc.errors import AudioError  # noqa: E402
from vc.mel import MelConfig, MelSpectrogram  # noqa: E402
from vc.pipeline import load_vocoder, resolve_run_folder  # noqa: E402
from vc.speaker import SpeakerEncoder, cosine  # noqa: E402
from vc.vocoders import GriffinLim, HiFiGAN  # noqa: E402

PRESETS = ("tiny", "fast", "v3", "v2", "v1")


def speed(vocoder, mel: torch.Tensor, repeats: int, compiled: bool = False) -> float:
    """Seconds of audio per second of compute: the median of `repeats` timed runs after a
    warm-up (which, with `compiled`, includes torch.compile's compilation)."""
    seconds = mel.shape[-1] * vocoder.mel.hop_length / vocoder.mel.sample_rate
    run = vocoder.generate if hasattr(vocoder, "generate") else vocoder
    if compiled:
        run = torch.compile(vocoder)
    with torch.inference_mode():
        run(mel)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run(mel)
            times.append(time.perf_counter() - start)
    return seconds / statistics.median(times)


def clips_of(folder: Path, count: int, seed: int = 0, exclude_speakers: set[str] = frozenset()) -> list:
    """`count` utterances spread over the folder's speakers (round robin, shuffled per speaker)."""
    utterances = [u for u in read_corpus(folder) if u.speaker.split(":")[-1] not in exclude_speakers]
    by_speaker: dict[str, list] = {}
    for u in utterances:
        by_speaker.setdefault(u.speaker, []).append(u)
    rng = np.random.default_rng(seed)
    for items in by_speaker.values():
        rng.shuffle(items)
    picked, round_ = [], 0
    while len(picked) < count and any(round_ < len(p) for p in by_speaker.values()):
        picked += [p[round_] for p in by_speaker.values() if round_ < len(p)]
        round_ += 1
    return picked[:count]


class Recogniser:
    """The word error rate of a clip against its transcript (pocketsphinx, jiwer)."""

    def __init__(self):
        self.asr = load_recogniser("pocketsphinx")

    def wer(self, audio: Audio, text: str) -> float:
        return error_rates([text], [self.asr.transcribe(audio)])["wer"]


def quality(vocoders: dict, clips: list, mel_config: MelConfig, encoder: SpeakerEncoder,
            listen_dir: Path | None, asr: Recogniser | None = None) -> dict[str, dict[str, float]]:
    mel_fn = MelSpectrogram(mel_config)
    names = ["original", *vocoders] if asr else list(vocoders)
    rows: dict[str, dict[str, list[float]]] = {name: {"mel_l1": [], "mcd": [], "speaker_cos": []}
                                               for name in vocoders}
    wers: dict[str, list[float]] = {name: [] for name in names}
    for i, utterance in enumerate(clips):
        path = utterance.path
        try:
            clip = prepare_speech(path, mel_config.sample_rate)
        except AudioError as error:
            print(f"  skipped {path.name}: {error}")
            continue
        with torch.inference_mode():
            mel = mel_fn(clip.to_tensor())
        original = encoder.embed(clip)
        transcribe = asr is not None and bool(utterance.text)
        if transcribe:
            wers["original"].append(asr.wer(clip, utterance.text))
        for name, vocoder in vocoders.items():
            with torch.inference_mode():
                wav = (vocoder.generate(mel) if hasattr(vocoder, "generate") else vocoder(mel)).float()
                again = mel_fn(wav)
            rows[name]["mel_l1"].append(mel_l1(mel.numpy(), again.numpy()))
            rows[name]["mcd"].append(mel_cepstral_distortion(mel.numpy(), again.numpy()))
            resynth = Audio(wav.numpy(), mel_config.sample_rate)
            rows[name]["speaker_cos"].append(cosine(original, encoder.embed(resynth)))
            if transcribe:
                wers[name].append(asr.wer(resynth, utterance.text))
            if listen_dir is not None and i < 2:
                resynth.save(listen_dir / f"{path.stem}.{name.replace('/', '_')}.wav")
    table = {name: {k: float(np.mean(v)) for k, v in metrics.items()} | {"n": len(metrics["mel_l1"])}
             for name, metrics in rows.items()}
    for name, values in wers.items():
        if values:
            table.setdefault(name, {"n": len(values)})["wer"] = float(np.mean(values))
    return table


def write_card(folder: Path, name: str, results: dict) -> None:
    """The vocoder's resynthesis figures per set as Hub model-index results of its card."""
    from vc.hub import update_model_card_metrics
    blocks = []
    for set_name, table in results["quality"].items():
        ours, gl = table[name], table["griffinlim-32"]
        blocks.append({"dataset": {"type": set_name, "name": f"{set_name} ({ours['n']} clips, resynthesis)"},
                       "metrics": [
                           {"type": "mel_l1", "value": round(ours["mel_l1"], 4),
                            "name": f"log-mel L1 (Griffin-Lim-32: {gl['mel_l1']:.4f})"},
                           {"type": "mcd", "value": round(ours["mcd"], 3),
                            "name": f"MCD dB, DTW (Griffin-Lim-32: {gl['mcd']:.3f})"},
                           {"type": "speaker_cosine", "value": round(ours["speaker_cos"], 4),
                            "name": f"GE2E cosine to the original (Griffin-Lim-32: {gl['speaker_cos']:.4f})"}]
                       + ([{"type": "wer", "value": round(ours["wer"], 4),
                            "name": f"pocketsphinx WER (Griffin-Lim-32: {gl['wer']:.4f}, "
                                    f"original: {table['original']['wer']:.4f})"}] if "wer" in ours else [])})
    if name in results["speed"]:
        blocks.append({"dataset": {"type": "speed", "name": f"10 s of speech, {results['machine']}"},
                       "metrics": [{"type": "speed", "value": round(results["speed"][name], 1),
                                    "name": "seconds of audio per second of compute "
                                            f"(Griffin-Lim-32: {results['speed']['griffinlim-32']:.1f})"}]})
    update_model_card_metrics(folder, blocks)
    print(f"updated the model card in {folder}")


def plot(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    sets = list(results["quality"])
    names = [n for n in next(iter(results["quality"].values())) if n != "original"]
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
    speeds = results["speed"]
    axes[0].barh(list(speeds), list(speeds.values()), color="tab:gray")
    axes[0].set_xscale("log")
    axes[0].axvline(1.0, color="k", lw=0.8)
    axes[0].set_title("audio seconds per compute second")
    for ax, metric, title in zip(axes[1:], ("mel_l1", "mcd", "speaker_cos"),
                                 ("log-mel L1 (lower is better)", "MCD dB (lower is better)",
                                  "speaker cosine to original (higher)")):
        width = 0.8 / len(names)
        for j, name in enumerate(names):
            ax.bar(np.arange(len(sets)) + j * width, [results["quality"][s][name][metric] for s in sets],
                   width, label=name)
        ax.set_xticks(np.arange(len(sets)) + 0.4 - width / 2, sets, fontsize=8)
        ax.set_title(title)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocoders", nargs="*", default=[], help="trained vocoders (folders, runs, names)")
    parser.add_argument("--sets", nargs="*", default=[], help="NAME=FOLDER evaluation sets")
    parser.add_argument("--exclude-speakers-of", help="a training corpus whose speakers are left out of the sets")
    parser.add_argument("--per-set", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the speed-test mel")
    parser.add_argument("--asr", action="store_true",
                        help="also the pocketsphinx word error rate, on sets with transcripts")
    parser.add_argument("--skip-speed", action="store_true", help="quality figures only")
    parser.add_argument("--compile", action="store_true",
                        help="also time torch.compile'd versions of the tiny and fast presets")
    parser.add_argument("--write-card", action="store_true",
                        help="write each trained vocoder's quality figures into its model card")
    parser.add_argument("--out", default="runs/vocoder-benchmark")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    mel_config = MelConfig()
    trained = {str(v): load_vocoder(str(resolve_run_folder(v)), mel_config) for v in args.vocoders}
    for vocoder in trained.values():
        vocoder.eval()

    # A real 10 s mel: one utterance repeated to length, so every vocoder times the same input.
    frames = int(args.seconds * mel_config.frame_rate)
    speech = sorted((REPO.parent / "shared" / "real-speech").rglob("*.flac"))[:1]
    if speech:
        base = MelSpectrogram(mel_config)(prepare_speech(speech[0], mel_config.sample_rate).to_tensor())
        mel = base.repeat(1, -(-frames // base.shape[-1]))[:, :frames]
    else:
        mel = torch.randn(mel_config.n_mels, frames) - 5
    results: dict = {"machine": f"{platform.processor() or platform.machine()}, "
                                f"{torch.get_num_threads()} torch threads",
                     "speed_input_seconds": args.seconds, "speed": {}, "quality": {}}
    contenders = {"griffinlim-32": GriffinLim(mel_config, n_iter=32)}
    contenders.update({f"hifigan-{p} (untrained)": HiFiGAN.from_preset(p).eval() for p in PRESETS})
    contenders.update(trained)
    for name, vocoder in contenders.items():
        if args.skip_speed:
            break
        results["speed"][name] = speed(vocoder, mel, args.repeats)
        print(f"speed  {name:32s} {results['speed'][name]:8.1f}x real time")
    if args.compile and not args.skip_speed:
        for preset in ("tiny", "fast"):
            name = f"hifigan-{preset} (untrained, torch.compile)"
            results["speed"][name] = speed(contenders[f"hifigan-{preset} (untrained)"], mel,
                                           args.repeats, compiled=True)
            print(f"speed  {name:32s} {results['speed'][name]:8.1f}x real time")

    if args.sets:
        encoder = SpeakerEncoder.pretrained()
        exclude = set()
        if args.exclude_speakers_of:
            exclude = {u.speaker.split(":")[-1] for u in read_corpus(args.exclude_speakers_of)}
        for spec in args.sets:
            name, folder = spec.split("=", 1)
            clips = clips_of(Path(folder), args.per_set, exclude_speakers=exclude)
            print(f"quality on {name}: {len(clips)} clips")
            listen = out / "listen" / name
            listen.mkdir(parents=True, exist_ok=True)
            results["quality"][name] = quality({"griffinlim-32": contenders["griffinlim-32"], **trained},
                                               clips, mel_config, encoder, listen,
                                               Recogniser() if args.asr else None)
            for vocoder, metrics in results["quality"][name].items():
                print(f"  {vocoder:32s} " + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()))

    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [f"# Vocoder benchmark\n\nMachine: {results['machine']}.\n",
             "| vocoder | audio s per compute s |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in results["speed"].items()]
    for set_name, table in results["quality"].items():
        lines += [f"\n## {set_name}\n", "| vocoder | n | log-mel L1 | MCD (dB) | speaker cosine | WER |",
                  "|---|---|---|---|---|---|"]
        cell = lambda m, k, f: format(m[k], f) if k in m else "–"  # noqa: E731
        lines += [f"| {k} | {m['n']} | {cell(m, 'mel_l1', '.3f')} | {cell(m, 'mcd', '.2f')} | "
                  f"{cell(m, 'speaker_cos', '.3f')} | {cell(m, 'wer', '.3f')} |" for k, m in table.items()]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    if results["quality"]:
        plot(results, out / "results.png")
    if args.write_card:
        for spec in args.vocoders:
            write_card(Path(resolve_run_folder(spec)), spec, results)
    print(f"wrote {out / 'results.md'}")


if __name__ == "__main__":
    main()

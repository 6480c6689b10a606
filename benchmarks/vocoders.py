"""Vocoders alone: speed against Griffin-Lim-32 (the run's reference), and resynthesis quality.

Speed: seconds of audio per second of compute on one mel of real speech, the fastest of the
repeats after a warm-up, for Griffin-Lim (32 iterations), every vocoder of the registry, any
`--vocoder` given, and each HiFi-GAN preset untrained (speed does not depend on the weights).
Quality: clips of held-out real speech (LibriSpeech test-other, VCTK) turned into a mel and
back by Griffin-Lim-32 and each trained vocoder: log-mel L1 and MCD (DTW) of the resynthesis
against the original, and the GE2E cosine between them. `--write-vocoder-cards` writes the
figures of the registry's trained vocoders into their model cards (Hub model-index results).
"""
from __future__ import annotations

import os

import numpy as np
import torch

from .common import Settings, Speech, synchronizer, timed

PRESETS = ("tiny", "fast", "v3", "v2", "v1")
REFERENCE = "griffinlim-32"
QUALITY_SETS = {"real-test-other": ("librispeech", "test-other"), "real-vctk": ("vctk",)}


def speech_mel(speech: Speech, seconds: float, mel_config) -> torch.Tensor:
    """A log-mel (n_mels, frames) of exactly `seconds` of real speech."""
    from vc.audio import prepare_speech
    from vc.mel import MelSpectrogram

    clip = prepare_speech(speech.clip(max(seconds, 2.0)), mel_config.sample_rate)
    with torch.inference_mode():
        base = MelSpectrogram(mel_config)(clip.to_tensor())
    frames = max(1, int(round(seconds * mel_config.frame_rate)))
    return base.repeat(1, -(-frames // base.shape[-1]))[:, :frames]


def speed(vocoder, mel: torch.Tensor, repeats: int, device: str) -> dict:
    """Seconds of audio per second of compute of `vocoder` on `mel` ("speed"), and the timing."""
    seconds = mel.shape[-1] * vocoder.mel.hop_length / vocoder.mel.sample_rate
    mel = mel.to(device)
    run = vocoder.generate if hasattr(vocoder, "generate") else vocoder
    with torch.inference_mode():
        took = timed(lambda: run(mel), repeats, warmup=1, sync=synchronizer(device))
    return {"speed": seconds / took.best, "timing": took.to_dict()}


def reference_speed(settings: Settings, speech: Speech) -> dict:
    """Griffin-Lim-32's speed here and now: the unit every "x GL" ratio of the run divides by."""
    from vc.mel import MelConfig
    from vc.vocoders import GriffinLim

    config = MelConfig()
    mel = speech_mel(speech, settings.vocoder_seconds, config)
    measured = speed(GriffinLim(config, n_iter=32).to(settings.device), mel, max(5, settings.repeats),
                     settings.device)
    return {"name": REFERENCE, "input_seconds": settings.vocoder_seconds, **measured}


def trained_vocoders(settings: Settings) -> dict[str, tuple[torch.nn.Module, str | None]]:
    """name -> (loaded vocoder, its folder) for the registry's weighted vocoders and `--vocoder`s."""
    from vc.pipeline import load_vocoder, resolve_run_folder
    from vc.registry import ModelRegistry

    registry = ModelRegistry.from_file(settings.registry)
    found = {}
    for name in registry.vocoder_names():
        folder = registry.model_folder(name)
        if folder is not None:
            found[name] = (load_vocoder(folder, device=settings.device).eval(), str(folder))
    for spec in settings.extra_vocoders:
        folder = resolve_run_folder(spec)
        found[str(spec)] = (load_vocoder(folder, device=settings.device).eval(),
                            str(folder) if os.path.isdir(folder) else None)
    return found


def run(settings: Settings, speech: Speech, reference: dict, progress) -> dict:
    from vc.mel import MelConfig
    from vc.vocoders import GriffinLim, HiFiGAN

    trained = trained_vocoders(settings)
    contenders = {REFERENCE: GriffinLim(MelConfig(), n_iter=32).to(settings.device)}
    contenders.update({name: vocoder for name, (vocoder, _) in trained.items()})
    contenders.update({f"hifigan-{p} (untrained)": HiFiGAN.from_preset(p).to(settings.device).eval()
                       for p in PRESETS})
    mels: dict[str, torch.Tensor] = {}
    rows = []
    for name, vocoder in contenders.items():
        progress(f"vocoder {name}")
        key = repr(vocoder.mel.to_dict())
        if key not in mels:
            mels[key] = speech_mel(speech, settings.vocoder_seconds, vocoder.mel)
        # the reference row is the run's reference figure itself (same input, same measurement)
        measured = reference if name == REFERENCE else speed(vocoder, mels[key], settings.repeats, settings.device)
        value = measured["speed"]
        rows.append({"vocoder": name, "speed": value, "vs_reference": value / reference["speed"],
                     "timing": measured["timing"],
                     "parameters": sum(p.numel() for p in vocoder.parameters()),
                     "trained": name in trained, "reference": name == REFERENCE})
    progress("vocoder quality")
    quality = resynthesis_quality(settings, speech, {REFERENCE: contenders[REFERENCE],
                                                     **{n: v for n, (v, _) in trained.items()}})
    result = {"input_seconds": settings.vocoder_seconds, "speed": rows, "quality": quality}
    if settings.write_vocoder_cards:
        result["cards_written"] = [write_card(folder, name, result, settings) for name, (_, folder)
                                   in trained.items() if folder is not None]
    return result


def quality_clips(folder, count: int) -> list:
    """`count` utterances spread over the folder's speakers (round robin, in path order)."""
    from vc.data import read_corpus

    by_speaker: dict[str, list] = {}
    for utterance in read_corpus(folder):
        by_speaker.setdefault(utterance.speaker, []).append(utterance)
    picked, round_ = [], 0
    while len(picked) < count and any(round_ < len(u) for u in by_speaker.values()):
        picked += [u[round_] for u in by_speaker.values() if round_ < len(u)]
        round_ += 1
    return picked[:count]


def resynthesis_quality(settings: Settings, speech: Speech, vocoders: dict) -> dict:
    """Per set and vocoder: mean log-mel L1, MCD and speaker cosine of resynthesised clips."""
    from eval.metrics import mel_cepstral_distortion, mel_l1
    from vc.audio import Audio, prepare_speech
    from vc.errors import AudioError
    from vc.mel import MelSpectrogram
    from vc.speaker import SpeakerEncoder, cosine

    encoder = SpeakerEncoder.pretrained(device=settings.device)
    table = {}
    for set_name, parts in QUALITY_SETS.items():
        folder = speech.root.joinpath(*parts)
        if not folder.is_dir():
            table[set_name] = {"missing": f"no {folder}"}
            continue
        rows = {name: {"mel_l1": [], "mcd": [], "speaker_cos": []} for name in vocoders}
        for utterance in quality_clips(folder, settings.vocoder_clips):
            clips = {}
            for name, vocoder in vocoders.items():
                config = vocoder.mel
                mel_fn = MelSpectrogram(config).to(settings.device)
                try:
                    if config.sample_rate not in clips:
                        clips[config.sample_rate] = prepare_speech(utterance.path, config.sample_rate)
                except AudioError:
                    break  # not usable speech: the clip is left out for every vocoder
                clip = clips[config.sample_rate]
                with torch.inference_mode():
                    mel = mel_fn(clip.to_tensor().to(settings.device))
                    wav = (vocoder.generate(mel) if hasattr(vocoder, "generate") else vocoder(mel)).float()
                    again = mel_fn(wav)
                a, b = mel.cpu().numpy(), again.cpu().numpy()
                rows[name]["mel_l1"].append(mel_l1(a, b))
                rows[name]["mcd"].append(mel_cepstral_distortion(a, b))
                resynth = Audio(wav.cpu().numpy(), config.sample_rate)
                rows[name]["speaker_cos"].append(cosine(encoder.embed(clip), encoder.embed(resynth)))
        table[set_name] = {name: {k: float(np.mean(v)) for k, v in m.items() if v} | {"n": len(m["mel_l1"])}
                           for name, m in rows.items()}
    return table


def write_card(folder: str, name: str, result: dict, settings: Settings) -> str:
    """The vocoder's resynthesis figures per set and its speed as Hub model-index results."""
    from vc.hub.card import update_model_card_metrics

    blocks = []
    for set_name, table in result["quality"].items():
        if name not in table or not table[name].get("n"):
            continue
        ours, gl = table[name], table[REFERENCE]
        blocks.append({"dataset": {"type": set_name, "name": f"{set_name} ({ours['n']} clips, resynthesis)"},
                       "metrics": [
                           {"type": "mel_l1", "value": round(ours["mel_l1"], 4),
                            "name": f"log-mel L1 (Griffin-Lim-32: {gl['mel_l1']:.4f})"},
                           {"type": "mcd", "value": round(ours["mcd"], 3),
                            "name": f"MCD dB, DTW (Griffin-Lim-32: {gl['mcd']:.3f})"},
                           {"type": "speaker_cosine", "value": round(ours["speaker_cos"], 4),
                            "name": f"GE2E cosine to the original (Griffin-Lim-32: {gl['speaker_cos']:.4f})"}]})
    speeds = {row["vocoder"]: row["speed"] for row in result["speed"]}
    if name in speeds:
        blocks.append({"dataset": {"type": "speed", "name": f"{result['input_seconds']:g} s of speech, "
                                                            f"{settings.threads} torch threads"},
                       "metrics": [{"type": "speed", "value": round(speeds[name], 1),
                                    "name": "seconds of audio per second of compute "
                                            f"(Griffin-Lim-32: {speeds[REFERENCE]:.1f})"}]})
    return str(update_model_card_metrics(folder, blocks))

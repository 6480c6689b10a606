"""The speaker encoder per second of input audio, and the text-to-speech cloner per second of
output (when one is shipped: `vc.cloning` importable and `models.json` listing "cloners")."""
from __future__ import annotations

import time

from .common import Settings, Speech, synchronizer, timed

NO_CLONER = "no cloner available"
CLONER_TEXT = ("The benchmark reads this sentence aloud in the reference voice. It has a number, "
               "twenty five, and a question at the end: does the voice hold up?")


def speaker_encoder(settings: Settings, speech: Speech, reference: dict, progress) -> dict:
    """`SpeakerEncoder.embed` (decode, level, pause removal, GE2E) on real speech of each length."""
    import soundfile as sf

    from vc.speaker import SpeakerEncoder

    encoder = SpeakerEncoder.pretrained(device=settings.device)
    rows = []
    for seconds in settings.encoder_seconds:
        progress(f"speaker encoder {seconds:g} s")
        path = speech.clip(seconds)
        length = sf.info(path).duration
        took = timed(lambda: encoder.embed(path), settings.repeats, warmup=1, sync=synchronizer(settings.device))
        rows.append({"seconds": round(length, 3), "embed_seconds": took.best, "speed": length / took.best,
                     "vs_reference": length / took.best / reference["speed"], "timing": took.to_dict()})
    return {"encoder": "GE2E (vc.speaker.SpeakerEncoder)", "inputs": rows}


def cloner(settings: Settings, speech: Speech, reference: dict, progress) -> dict:
    """Every cloner of the registry with every vocoder: `VoiceCloner.speak(text, reference)` in
    seconds of output per second of compute; or why there is none."""
    from vc.registry import ModelRegistry

    registry = ModelRegistry.from_file(settings.registry, device=settings.device)
    names = registry.cloner_names()
    if not names:
        missing = {k: v for k, v in registry.unavailable().items() if k in getattr(registry, "cloners", {})}
        why = "models.json lists no cloners" if not missing else \
            "; ".join(f"{k} is unavailable: {v}" for k, v in missing.items())
        return {"status": NO_CLONER, "why": why}
    references = [str(p) for p in speech.references()]
    sync = synchronizer(settings.device)
    rows = []
    for name in names:
        for vocoder in registry.vocoder_names():
            progress(f"cloner {name} + {vocoder}")
            try:
                start = time.perf_counter()
                voice = registry.cloner(name, vocoder)
                load_seconds = time.perf_counter() - start
                voice.speak("A short warm up.", references)  # one-off costs: untimed
                output = {}

                def speak():
                    output["audio"] = voice.speak(CLONER_TEXT, references)
                took = timed(speak, settings.repeats, warmup=0, sync=sync)
                seconds = output["audio"].duration
                rows.append({"cloner": name, "vocoder": vocoder, "load_seconds": load_seconds,
                             "output_seconds": round(seconds, 3), "speak_seconds": took.best,
                             "speed": seconds / took.best, "vs_reference": seconds / took.best / reference["speed"],
                             "timing": took.to_dict()})
            except Exception as err:  # noqa: BLE001 - a cloner still being written may fail; say how
                rows.append({"cloner": name, "vocoder": vocoder, "error": f"{type(err).__name__}: {err}"})
    return {"status": "measured", "text": CLONER_TEXT, "cloners": rows}

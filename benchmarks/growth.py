"""How cost grows with the input: the default chain's conversion time and peak memory at
several source lengths, each length in a fresh process so one cannot inflate the next.

`VoiceConverter` converts and vocodes long sources in overlapping chunks, so time should grow
linearly (flat seconds per input second) and memory stay flat above the loaded models.
"""
from __future__ import annotations

import time

from .chains import converter_for
from .common import BenchmarkError, Settings, Speech, in_fresh_process, peak_rss_mb, synchronizer, timed

LONG = 60.0  # inputs longer than this are converted once (not `repeats` times)


def run(settings: Settings, speech: Speech, reference: dict, progress) -> dict:
    from vc.registry import ModelRegistry

    registry = ModelRegistry.from_file(settings.registry)
    model, vocoder = registry.default_converter, registry.default_vocoder
    sizes = sorted(settings.growth_seconds)
    warm = speech.clip(sizes[0])
    rows = []
    for seconds in sizes:
        progress(f"growth {seconds:g} s")
        spec = {"model": model, "vocoder": vocoder, "registry": str(settings.registry),
                "source": str(speech.clip(seconds)), "warm": str(warm),
                "references": [str(p) for p in speech.references()],
                "repeats": settings.repeats if seconds <= LONG else 1}
        try:
            rows.append({"seconds": seconds, **in_fresh_process("growth.measure_growth", spec, settings)})
        except BenchmarkError as err:
            rows.append({"seconds": seconds, "error": str(err)})
    return {"model": model, "vocoder": vocoder, "sizes": rows}


def measure_growth(spec: dict) -> dict:
    """Worker: load the chain, convert the short warm-up clip, then time the source."""
    import soundfile as sf

    sync = synchronizer(spec["device"])
    converter = converter_for(spec)
    converter.convert(spec["warm"], spec["references"])  # one-off costs: untimed
    loaded = peak_rss_mb()
    seconds = sf.info(spec["source"]).duration
    start = time.perf_counter()
    took = timed(lambda: converter.convert(spec["source"], spec["references"]), spec["repeats"], warmup=0, sync=sync)
    wall = time.perf_counter() - start
    peak = peak_rss_mb()
    return {"input_seconds": round(seconds, 3), "convert_seconds": took.best, "speed": seconds / took.best,
            "seconds_per_input_second": took.best / seconds, "wall_seconds": wall, "timing": took.to_dict(),
            "loaded_rss_mb": round(loaded, 1), "above_loaded_mb": round(peak - loaded, 1)}

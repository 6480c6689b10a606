"""Every shipped converter with every shipped vocoder, end to end, on real speech.

For each (converter, vocoder) pair of the registry (`models.json`), in a fresh process: load
it as the web demo does (`vc.registry.ModelRegistry.converter`), convert one untimed clip, then
time `VoiceConverter.convert` on each input length (the fastest of the repeats), and as often
again step by step through the same public calls to split the time into its stages (the
fastest of each):

- decode: reading, checking, trimming and normalising source and reference (`prepare_speech`);
- speaker: the reference mels and GE2E embedding, and the source's where the model uses it;
- conversion: the source mel and the model, in chunks (`VoiceConverter.convert_mel`);
- vocoder: mel to waveform, in chunks (`VoiceConverter.vocode`).

The process's peak resident memory is read after each length (shortest first, so each figure
is that length's peak). `--tiny` measures every chain in one shared process to save the start-ups.
"""
from __future__ import annotations

import time

from .common import BenchmarkError, Settings, Speech, in_fresh_process, peak_rss_mb, synchronizer, timed

STAGES = ("decode", "speaker", "transcript", "conversion", "vocoder")
CHUNK_SECONDS = 16.0  # VoiceConverter.convert's default


def chain_names(settings: Settings) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """Every available (converter, vocoder) pair of the registry, and the entries left out
    with the reason."""
    from vc.registry import ModelRegistry

    registry = ModelRegistry.from_file(settings.registry)
    pairs = [(m, v) for m in registry.converter_names() for v in registry.vocoder_names()]
    return pairs, registry.unavailable()


def run(settings: Settings, speech: Speech, reference: dict, progress) -> dict:
    pairs, missing = chain_names(settings)
    sources = [{"seconds": s, "path": str(speech.clip(s))} for s in sorted(settings.chain_seconds)]
    base = {"registry": str(settings.registry), "sources": sources, "repeats": settings.repeats,
            "references": [str(p) for p in speech.references()]}
    # a fresh process per chain, so each memory figure is its own; --tiny shares one to save time
    groups = [[pair] for pair in pairs] if settings.isolate else [pairs]
    rows = []
    for group in groups:
        progress("chain " + ", ".join(f"{m} + {v}" for m, v in group))
        try:
            measured = in_fresh_process("chains.measure_chains", {**base, "chains": group}, settings)["chains"]
        except BenchmarkError as err:
            measured = [{"model": m, "vocoder": v, "error": str(err)} for m, v in group]
        for row in measured:
            for item in row.get("inputs", []):
                item["vs_reference"] = item["speed"] / reference["speed"]
            rows.append({**row, "own_process": len(group) == 1})
    return {"inputs": speech.describe(), "input_seconds": sorted(settings.chain_seconds), "chains": rows,
            "unavailable": missing}


def converter_for(spec: dict):
    """The registry's converter for (model, vocoder), accepting sources of any length."""
    from vc.audio import SpeechLimits
    from vc.registry import ModelRegistry

    registry = ModelRegistry.from_file(spec["registry"], device=spec["device"],
                                       source_limits=SpeechLimits(max_duration=None))
    converter = registry.converter(spec["model"], spec["vocoder"])
    converter.speaker_encoder  # noqa: B018 - load the GE2E weights now, not inside a timing
    return converter


def forget_source(converter, prepared) -> None:
    """Drop the (prepared) source's cached transcript: a new source is transcribed on every
    conversion, while a voice used again (a preset) keeps its transcript and adaptation."""
    if converter.transcript is not None:
        converter.transcript.forget(prepared)


def staged(converter, source, references, sync) -> dict[str, float]:
    """Seconds of each stage of one conversion, through the converter's public steps (what
    `VoiceConverter.convert` does, minus its checks)."""
    import torch

    from vc.audio import prepare_speech

    model, device, rate = converter.model, converter.device, converter.sample_rate
    marks = [time.perf_counter()]
    src = prepare_speech(source, rate, converter.source_limits)
    refs = [prepare_speech(r, rate, converter.reference_limits) for r in references]
    marks.append(time.perf_counter())
    with torch.inference_mode():
        ref_mels = [converter.mel(r.to_tensor().to(device)) for r in refs]

        def speaker(clips, mels):
            embedding = None
            if model.speaker_input == "embedding":
                embedding = torch.from_numpy(converter.speaker_encoder.embed_many(clips)).to(device)
            return model.speaker(mels, embedding)
        target = speaker(refs, ref_mels)
        mel = converter.mel(src.to_tensor().to(device))
        source_speaker = speaker([src], [mel]) if model.uses_source_speaker else target
        sync()
        marks.append(time.perf_counter())
        # transcript guidance and phone matching (the phonetic default): Whisper + the aligner
        phones = converter.phones_of(src, mel.shape[-1])
        ref_phones = [converter.phones_of(r, m.shape[-1]) for r, m in zip(refs, ref_mels)] \
            if converter.phone_matching is not None or converter.adaptation is not None else None
        marks.append(time.perf_counter())
        # adapting to the reference (an adapted entry) counts as conversion
        adapted = converter.adapted_model(ref_mels, ref_phones, target) if ref_phones else converter.model
        chunk = max(64, int(CHUNK_SECONDS * converter.mel_config.frame_rate))
        converted = converter.convert_mel(mel, source_speaker, target, chunk_frames=chunk,
                                          overlap_frames=min(64, chunk // 4), phones=phones, model=adapted)
        if converter.phone_matching is not None:
            ref_labels = [converter.frame_phones(m, known) for m, known in zip(ref_mels, ref_phones)]
            converted = converter.phone_matching.refine(converted, converter.frame_phones(mel, phones),
                                                        ref_mels, ref_labels)
        sync()
        marks.append(time.perf_counter())
        converter.vocode(converted)
        sync()
        marks.append(time.perf_counter())
    return {stage: marks[i + 1] - marks[i] for i, stage in enumerate(STAGES)}


def measure_chains(spec: dict) -> dict:
    """Worker: each chain of `spec["chains"]` on every input length (see the module docstring)."""
    rows = []
    for model, vocoder in spec["chains"]:
        try:
            rows.append({"model": model, "vocoder": vocoder, **measure_chain({**spec, "model": model,
                                                                             "vocoder": vocoder})})
        except Exception as err:  # noqa: BLE001 - the other chains of the process still run
            rows.append({"model": model, "vocoder": vocoder, "error": f"{type(err).__name__}: {err}"})
    return {"chains": rows}


def measure_chain(spec: dict) -> dict:
    """One chain on every input length."""
    import soundfile as sf

    from vc.audio import prepare_speech

    sync = synchronizer(spec["device"])
    start = time.perf_counter()
    converter = converter_for(spec)
    load_seconds = time.perf_counter() - start
    loaded_mb = peak_rss_mb()
    references = spec["references"]
    sources = sorted(spec["sources"], key=lambda s: s["seconds"])
    converter.convert(sources[0]["path"], references)  # one-off costs (allocator, caches): untimed
    results = []
    for source in sources:
        seconds = sf.info(source["path"]).duration
        # prepared once, untimed: only the cache key of what convert prepares again
        prepared = prepare_speech(source["path"], converter.sample_rate, converter.source_limits)

        def convert_anew() -> None:
            forget_source(converter, prepared)  # every repeat reads its source anew; the voice stays cached
            converter.convert(source["path"], references)
        e2e = timed(convert_anew, spec["repeats"], warmup=0, sync=sync)
        runs = []
        for _ in range(spec["repeats"]):
            forget_source(converter, prepared)
            runs.append(staged(converter, source["path"], references, sync))
        stages = {stage: min(run[stage] for run in runs) for stage in STAGES}  # each stage's fastest
        total = sum(stages.values())
        results.append({"seconds": round(seconds, 3), "e2e_seconds": e2e.best, "speed": seconds / e2e.best,
                        "timing": e2e.to_dict(), "stage_seconds": stages,
                        "stage_shares": {k: v / total for k, v in stages.items()},
                        "peak_rss_mb": round(peak_rss_mb(), 1)})
    return {"load_seconds": load_seconds, "loaded_rss_mb": round(loaded_mb, 1), "inputs": results,
            "model_type": type(converter.model).__name__, "vocoder_type": type(converter.vocoder).__name__}

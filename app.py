"""voicelab's web demo: any-to-any voice conversion in the browser (a Hugging Face Space app).

    python3 app.py                       # http://127.0.0.1:7860, shipped checkpoints, offline
    python3 app.py --registry models.json --max-seconds 30 --max-upload-mb 20 --concurrency 2

UI wiring only: models come from `vc.registry`, conversion from `vc.pipeline`, the Clone tab
from `app_clone` (text cloning with `vc.cloning`), pictures from `vc.plots` and the evaluation
report from `eval.render`. API for `gradio_client` scripts: `/convert` (source audio, reference
audio, model name) -> converted audio; `/clone` (text, reference audio, cloner, vocoder, rate)
-> speech.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from app_clone import CloneTab, user_error
from vc import Audio, SpeechLimits, VoicelabError, load_audio
from vc.plots import figure_image, mel_figure
from vc.registry import ModelRegistry
from vc.speaker import cosine

ROOT = Path(__file__).resolve().parent


@dataclass(frozen=True)
class DemoSettings:
    registry: Path = ROOT / "models.json"
    voices: Path = ROOT / "assets" / "voices"
    examples: Path = ROOT / "assets" / "examples"
    reports: Path = ROOT / "reports"
    max_seconds: float = 30.0
    max_upload_mb: int = 20
    max_text_chars: int = 500
    concurrency: int = 2
    queue_size: int = 32


def _error(err: Exception) -> gr.Error:
    if isinstance(err, VoicelabError):  # bad input, told as it is; anything else is logged in full
        return user_error(str(err))
    return gr.Error(f"conversion failed: {type(err).__name__}: {err}")


class Demo:
    """The page's state: one model registry shared by every visitor (models load once)."""

    def __init__(self, settings: DemoSettings):
        self.settings = settings
        limits = SpeechLimits(max_duration=settings.max_seconds)
        self.registry = ModelRegistry.from_file(
            settings.registry, source_limits=limits, reference_limits=limits,
            cloner_options=dict(reference_limits=limits, max_chars=settings.max_text_chars))
        self.voices = {p.stem: p for p in sorted(settings.voices.glob("*.wav"))}
        self.outputs = Path(tempfile.mkdtemp(prefix="voicelab-outputs-"))
        self._rendered: dict[tuple[str, int], str] = {}
        self.cloning = CloneTab(self)  # the Clone tab and /clone

    def _file(self, audio) -> str:
        """The output as a file of its own. Gradio names returned arrays by their content and
        writes them in place, so two visitors getting identical audio at once could read each
        other's half-written file; a returned file is copied into its cache atomically."""
        cutoff = time.time() - 600
        for old in self.outputs.glob("*.wav"):  # gradio has its copy by then
            if old.stat().st_mtime < cutoff:
                old.unlink(missing_ok=True)
        handle, name = tempfile.mkstemp(suffix=".wav", dir=self.outputs)
        os.close(handle)
        try:
            return str(audio.save(name))  # refuses NaN/infinite samples
        except VoicelabError as err:
            Path(name).unlink(missing_ok=True)
            raise _error(err) from None

    def _load(self, path: str) -> Audio:
        """An upload, refused from its header if longer than the limit (never decoded whole)."""
        try:
            return load_audio(path, max_seconds=self.settings.max_seconds)
        except VoicelabError as err:
            raise _error(err) from None

    def _source(self, source: str | None) -> Audio:
        if not source:
            raise user_error("No source clip: upload or record the speech to convert.")
        return self._load(source)

    def _reference(self, reference: str | None, preset: str | None) -> Audio:
        if reference:
            clip = self._load(reference)
            if clip.duration < 2.0:
                gr.Warning("The reference clip is under 2 s: the voice will be matched loosely. "
                           "3 to 10 s of the target speaker works best.")
            return clip
        if preset in self.voices:
            return self._load(str(self.voices[preset]))
        raise user_error("No target voice: upload or record a reference clip of the target speaker, "
                       "or pick a preset voice.")

    def _run(self, source: Audio, reference: Audio, model, vocoder, progress=None):
        try:
            converter = self.registry.converter(model, vocoder)
            started = time.perf_counter()
            output = converter.convert(source, reference, progress=progress)
            return converter, output, time.perf_counter() - started
        except VoicelabError as err:
            raise _error(err) from None

    def _similarity(self, output: Audio, reference_embedding) -> float:
        return cosine(self.registry.speaker_encoder.embed(output), reference_embedding)

    def convert(self, source, reference, preset, model, vocoder, progress=gr.Progress()):
        """Convert tab: audio, spectrograms, similarity to the reference, timing."""
        source, reference = self._source(source), self._reference(reference, preset)
        report = lambda fraction, what="": progress(fraction, desc=what)
        converter, output, seconds = self._run(source, reference, model, vocoder, report)
        similarity = self._similarity(output, self.registry.speaker_encoder.embed(reference))
        mels = {name: converter.mel(clip.resample(converter.sample_rate).to_tensor())
                for name, clip in (("source", source), ("reference", reference), ("output", output))}
        image = figure_image(mel_figure(mels, converter.mel_config.frame_rate, height_each=1.6))
        summary = (f"**Similarity to the reference:** {similarity:.3f} (GE2E cosine; the same speaker "
                   f"usually scores above 0.75)  \n**Time:** {seconds:.2f} s for {output.duration:.1f} s of "
                   f"audio ({output.duration / max(seconds, 1e-9):.0f}× real time) with {model} + {vocoder}")
        return self._file(output), image, summary

    def convert_api(self, source, reference, model):
        """The `/convert` endpoint: converted audio only, with the default vocoder."""
        if not reference:
            raise user_error("No reference clip: send a clip of the target speaker.")
        _, output, _ = self._run(self._source(source), self._load(reference),
                                 model or self.registry.default_converter, self.registry.default_vocoder)
        return self._file(output)

    def compare(self, source, reference, preset, models, vocoder):
        """Compare tab: every chosen model on the same input, side by side."""
        source, reference = self._source(source), self._reference(reference, preset)
        if not models:
            raise user_error("No model chosen: tick at least one model to compare.")
        target = self.registry.speaker_encoder.embed(reference)
        updates = []
        for name in self.registry.converter_names():
            if name not in models:
                updates += [gr.update(visible=False, value=None), gr.update(visible=False)]
                continue
            _, output, seconds = self._run(source, reference, name, vocoder)
            similarity = self._similarity(output, target)
            updates += [gr.update(visible=True, value=self._file(output), label=name),
                        gr.update(visible=True, value=f"**{name}**: similarity {similarity:.3f}, {seconds:.2f} s")]
        return updates

    def report_names(self) -> list[str]:
        return sorted(p.parent.name for p in self.settings.reports.glob("*/report.json"))

    def report_html(self, name: str | None) -> str:
        """A report rendered once per version of its file (charts take seconds to draw), when
        the Results tab is first opened rather than at start-up."""
        if not name:
            return "<p>No evaluation report yet: run <code>python -m eval run ...</code> and publish it under reports/.</p>"
        path = self.settings.reports / name / "report.json"
        key = (name, path.stat().st_mtime_ns)
        if key not in self._rendered:
            from eval.render import render_html
            report = json.loads(path.read_text(encoding="utf-8"))
            examples = 2 if (path.parent / "audio").is_dir() else 0
            self._rendered[key] = render_html(report, path.parent, standalone=False, max_examples=examples)
        return self._rendered[key]

    def model_card(self, name: str | None) -> str:
        folder = self.registry.model_folder(name) if name else None
        card = folder / "README.md" if folder else None
        if card is None or not card.is_file():
            return "No model card (Griffin-Lim has no weights)." if name == "griffinlim" else "No model card."
        text = card.read_text(encoding="utf-8")
        return text.split("---", 2)[2] if text.startswith("---") else text  # the YAML is for the Hub

    def availability(self) -> str:
        missing = self.registry.unavailable()
        if not missing:
            return ""
        lines = "\n".join(f"- **{name}**: {why}" for name, why in missing.items())
        return f"Unavailable models (the others work):\n{lines}"


def build_app(settings: DemoSettings = DemoSettings()) -> gr.Blocks:
    demo_state = Demo(settings)
    registry = demo_state.registry
    models, vocoders = registry.converter_names(), registry.vocoder_names()
    presets = list(demo_state.voices)
    with gr.Blocks(title="voicelab", delete_cache=(1800, 3600)) as app:
        clone = " (or type text on the Clone tab)" if registry.cloner_names() else ""
        gr.Markdown("# voicelab\nAny-to-any voice conversion: say something, pick a voice, hear yourself in "
                    f"it{clone}. Clips up to {settings.max_seconds:.0f} s; nothing you upload is shown to anyone else.")
        gr.Markdown(demo_state.availability())
        with gr.Tab("Convert"):
            with gr.Row():
                source = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Source speech",
                                  elem_id="source-audio")
                reference = gr.Audio(sources=["upload", "microphone"], type="filepath",
                                     label="Target voice (a few seconds of the target speaker)",
                                     elem_id="reference-audio")
            with gr.Row():
                preset = gr.Dropdown(presets, value=None, label="…or a preset voice")
                model = gr.Dropdown(models, value=registry.default_converter, label="Model")
                vocoder = gr.Dropdown(vocoders, value=registry.default_vocoder, label="Vocoder")
            button = gr.Button("Convert", variant="primary", elem_id="convert-button")
            output = gr.Audio(label="Converted", elem_id="output-audio", interactive=False)
            summary = gr.Markdown(elem_id="convert-summary")
            spectrograms = gr.Image(label="Mel spectrograms", interactive=False)
            button.click(demo_state.convert, [source, reference, preset, model, vocoder],
                         [output, spectrograms, summary], api_name="convert_ui", api_visibility="private")
            # before the examples, whose follow-up event would otherwise take the name
            api_output = gr.Audio(visible=False)
            gr.Button(visible=False).click(demo_state.convert_api, [source, reference, model], api_output,
                                           api_name="convert")
            gr.Examples([[str(p), None, presets[i % len(presets)], registry.default_converter,
                          registry.default_vocoder] for i, p in enumerate(sorted(settings.examples.glob("*.wav")))],
                        [source, reference, preset, model, vocoder], [output, spectrograms, summary],
                        fn=demo_state.convert, run_on_click=True, cache_examples=False,
                        label="One-click examples (synthetic voices)", api_visibility="private",
                        api_name="convert_example")
        with gr.Tab("Clone"):
            demo_state.cloning.build(presets)
        with gr.Tab("Compare"):
            with gr.Row():
                c_source = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Source speech")
                c_reference = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Target voice")
            with gr.Row():
                c_preset = gr.Dropdown(presets, value=presets[0] if presets else None, label="…or a preset voice")
                c_models = gr.CheckboxGroup(models, value=models, label="Models")
                c_vocoder = gr.Dropdown(vocoders, value=registry.default_vocoder, label="Vocoder")
            c_button = gr.Button("Compare", variant="primary")
            slots = []
            with gr.Row():
                for name in models:
                    with gr.Column():
                        slots += [gr.Audio(label=name, visible=False, interactive=False), gr.Markdown(visible=False)]
            c_button.click(demo_state.compare, [c_source, c_reference, c_preset, c_models, c_vocoder], slots,
                           api_name="compare")
        with gr.Tab("Results") as results_tab:
            reports = demo_state.report_names()
            chosen = gr.Dropdown(reports, value=reports[-1] if reports else None, label="Evaluation report")
            report_view = gr.HTML()
            card_choice = gr.Dropdown(models + vocoders, value=registry.default_converter, label="Model card")
            card_view = gr.Markdown()
            show_report = dict(fn=demo_state.report_html, inputs=chosen, outputs=report_view, api_visibility="private")
            show_card = dict(fn=demo_state.model_card, inputs=card_choice, outputs=card_view, api_visibility="private")
            results_tab.select(**show_report, api_name="report")
            chosen.change(**show_report, api_name="report_choice")
            results_tab.select(**show_card, api_name="model_card")
            card_choice.change(**show_card, api_name="model_card_choice")
    app.queue(default_concurrency_limit=settings.concurrency, max_size=settings.queue_size)
    app.voicelab = demo_state  # for tests and warm-up
    return app


def warm_up(app: gr.Blocks) -> None:
    """Load the default models in the background so the first visitor does not wait for it."""
    registry = app.voicelab.registry

    def load():
        converter = registry.converter(registry.default_converter, registry.default_vocoder)
        converter.speaker_encoder  # noqa: B018 - loads the GE2E weights
        if converter.transcript is not None:
            try:
                converter.transcript.load()  # Whisper and the aligner: about two seconds
            except VoicelabError:  # no Whisper weights: converting says so and goes on without
                pass
        if registry.default_cloner in registry.cloner_names():
            try:
                registry.cloner(registry.default_cloner, registry.default_vocoder)
                registry.phonemizer.lexicon.load()  # CMUdict: about a second to read
            except VoicelabError:  # e.g. a vocoder of other mel settings: the Clone tab will say so
                pass
    threading.Thread(target=load, daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser(description="voicelab web demo")
    parser.add_argument("--host", default=None, help="interface to listen on (default 127.0.0.1, or $GRADIO_SERVER_NAME)")
    parser.add_argument("--port", type=int, default=None, help="port (default 7860, or $GRADIO_SERVER_PORT)")
    parser.add_argument("--registry", type=Path, default=DemoSettings.registry, help="model registry JSON")
    parser.add_argument("--max-seconds", type=float, default=DemoSettings.max_seconds, help="longest clip accepted")
    parser.add_argument("--max-upload-mb", type=int, default=DemoSettings.max_upload_mb, help="largest upload")
    parser.add_argument("--max-text-chars", type=int, default=DemoSettings.max_text_chars,
                        help="longest text the Clone tab speaks at once")
    parser.add_argument("--concurrency", type=int, default=DemoSettings.concurrency,
                        help="conversions run at once; more requests wait in the queue")
    args = parser.parse_args()
    for flag, value, low in (("--max-seconds", args.max_seconds, 0), ("--max-upload-mb", args.max_upload_mb, 0),
                             ("--max-text-chars", args.max_text_chars, 0),
                             ("--concurrency", args.concurrency, 0), ("--port", args.port, -1)):
        if value is not None and not (low < value < float("inf")):
            parser.error(f"argument {flag}: must be above {low}, got {value}")
    if args.port is not None and args.port > 65535:
        parser.error(f"argument --port: must be at most 65535, got {args.port}")
    settings = DemoSettings(registry=args.registry, max_seconds=args.max_seconds,
                            max_upload_mb=args.max_upload_mb, max_text_chars=args.max_text_chars,
                            concurrency=args.concurrency)
    app = build_app(settings)
    warm_up(app)
    app.launch(server_name=args.host, server_port=args.port, max_file_size=f"{settings.max_upload_mb}mb")


if __name__ == "__main__":
    main()

"""The web demo's Clone tab: type a sentence, pick a voice, hear it said in that voice (SV2TTS).

UI wiring only, like app.py (which builds it inside its Clone tab): cloning comes from
`vc.cloning` through the page's model registry, the mel picture from `vc.plots`. API: `/clone`
(text, reference audio, cloner, vocoder, rate) -> speech, for `gradio_client` scripts.
"""
from __future__ import annotations

import time

import gradio as gr

from vc import VoicelabError
from vc.cloning import check_rate
from vc.errors import AudioError
from vc.plots import figure_image, mel_figure

EXAMPLES = ("The quick brown fox jumps over the lazy dog.",
            "Hello! It is half past three on the 4th of May, and the tea costs $2.50.",
            "Could you call me back tomorrow morning? I will be at home.")


def user_error(message: str) -> gr.Error:
    """What the visitor did wrong, shown on the page; no traceback in the server's log."""
    return gr.Error(message, print_exception=False)


def _error(err: Exception) -> gr.Error:
    if isinstance(err, VoicelabError):  # bad input: no traceback in the server's log
        return user_error(str(err))
    return gr.Error(f"cloning failed: {type(err).__name__}: {err}")


class CloneTab:
    """Text cloning on the page of `demo` (app.Demo: its registry, settings, uploads and outputs)."""

    def __init__(self, demo):
        self.demo, self.registry = demo, demo.registry

    def _clone(self, text, reference, cloner, vocoder, rate, progress=None):
        """(cloner, ClonedSpeech, seconds); the rate and text are checked before `reference()`
        reads the reference clip."""
        text = text or ""
        try:
            rate = check_rate(rate)
        except ValueError as err:
            raise user_error(f"Speaking {err}") from None
        try:
            model = self.registry.cloner(cloner, vocoder)
            model.sentences(text)
        except VoicelabError as err:
            raise _error(err) from None
        clip = reference()
        try:
            started = time.perf_counter()
            result = model.clone(text, clip, rate=rate, progress=progress)
            return model, result, time.perf_counter() - started
        except (VoicelabError, ValueError) as err:
            raise _error(err) from None

    def clone(self, text, reference, preset, cloner, vocoder, rate, progress=gr.Progress()):
        """The Clone button: speech, its mel, similarity to the reference, timing."""
        report = lambda fraction, what="": progress(fraction, desc=what)
        model, result, seconds = self._clone(text, lambda: self.demo._reference(reference, preset), cloner,
                                             vocoder, rate, report)
        try:
            similarity = (f"{model.similarity(result.audio, result.reference_embedding):.3f} (GE2E cosine; the "
                          "same speaker usually scores above 0.75)")
        except AudioError:
            similarity = "not measured (the speech is too short for a speaker embedding)"
        image = figure_image(mel_figure({"synthesized mel": result.mel}, model.mel_config.frame_rate, height_each=2.4))
        duration, count = result.audio.duration, len(result.sentences)
        summary = (f"**Similarity to the reference:** {similarity}  \n**Time:** {seconds:.2f} s for {duration:.1f} s "
                   f"of audio ({duration / max(seconds, 1e-9):.0f}× real time) with {cloner} + {vocoder}; "
                   f"{count} sentence{'s' * (count != 1)} at rate {float(rate):g}")
        return self.demo._file(result.audio), image, summary

    def clone_api(self, text, reference, cloner, vocoder, rate):
        """The `/clone` endpoint: the speech only."""
        def clip():
            if not reference:
                raise user_error("No reference clip: send a clip of the voice to clone.")
            return self.demo._load(reference)
        _, result, _ = self._clone(text, clip, cloner or self.registry.default_cloner,
                                   vocoder or self.registry.default_vocoder, 1.0 if rate is None else rate)
        return self.demo._file(result.audio)

    def note(self) -> str:
        """What the tab says when it has no cloner to offer."""
        listed = ", ".join(self.registry.cloners)
        why = f"the listed ones ({listed}) are unavailable (see above)" if listed else "none is installed"
        return (f"**Text cloning is not available here: {why}.** Text cloning (SV2TTS) needs a trained "
                "text-to-mel synthesizer: train one (`python -m training synthesizer --data CORPUS --out "
                "runs/synth`) and add it to the `\"cloners\"` list of the model registry "
                f"({self.demo.settings.registry.name}), e.g. `{{\"name\": \"synth-small\", \"source\": \"synth-small\"}}` "
                "(a name under checkpoints/, a folder, or a Hub repo id with a pinned `revision`), then restart.")

    def build(self, presets: list[str]) -> None:
        """The tab's components and events (call inside its gr.Tab), or the note when no cloner
        is available (then there is no `/clone` endpoint either)."""
        registry, limit = self.registry, self.demo.settings.max_text_chars
        cloners = registry.cloner_names()
        if not cloners:
            gr.Markdown(self.note(), elem_id="clone-note")
            return
        gr.Markdown("Type a sentence and pick a voice: the synthesizer says it in that voice (SV2TTS: a GE2E "
                    "speaker embedding of the reference conditions a text-to-mel synthesizer; a vocoder makes "
                    "the sound).")
        text = gr.Textbox(lines=3, label=f"Text to speak (up to {limit} characters)", elem_id="clone-text",
                          placeholder="Type what the voice should say…")
        counter = gr.Markdown(f"0 / {limit} characters", elem_id="clone-counter")
        text.change(None, text, counter, js=f"(t) => `${{t.length}} / {limit} characters` + "
                    f"(t.length > {limit} ? ' (too long: shorten it)' : '')", api_visibility="private")
        with gr.Row():
            reference = gr.Audio(sources=["upload", "microphone"], type="filepath",
                                 label="Voice to clone (a few seconds of the speaker)", elem_id="clone-reference")
            with gr.Column():
                preset = gr.Dropdown(presets, value=None, label="…or a preset voice", elem_id="clone-preset")
                cloner = gr.Dropdown(cloners, value=registry.default_cloner if registry.default_cloner in cloners
                                     else cloners[0], label="Synthesizer")
                vocoder = gr.Dropdown(registry.vocoder_names(), value=registry.default_vocoder, label="Vocoder")
                rate = gr.Slider(0.5, 2.0, value=1.0, step=0.05, label="Speaking rate (1 is the natural pace)")
        button = gr.Button("Clone", variant="primary", elem_id="clone-button")
        output = gr.Audio(label="Cloned speech", elem_id="clone-output", interactive=False)
        summary = gr.Markdown(elem_id="clone-summary")
        spectrogram = gr.Image(label="Mel spectrogram of the speech", interactive=False)
        inputs, outputs = [text, reference, preset, cloner, vocoder, rate], [output, spectrogram, summary]
        button.click(self.clone, inputs, outputs, api_name="clone_ui", api_visibility="private")
        # before the examples, whose follow-up event would otherwise take the name
        gr.Button(visible=False).click(self.clone_api, [text, reference, cloner, vocoder, rate],
                                       gr.Audio(visible=False), api_name="clone")
        gr.Examples([[sentence, None, presets[i % len(presets)], cloner.value, vocoder.value, 1.0]
                     for i, sentence in enumerate(EXAMPLES)], inputs, outputs, fn=self.clone, run_on_click=True,
                    cache_examples=False, label="One-click examples (synthetic voices)", api_visibility="private",
                    api_name="clone_example")

"""Adapting a model to the reference voice: a few gradient steps on the reference itself.

    adaptation = ReferenceAdaptation(steps=20)
    adapted = adaptation.adapt(synthesizer, [reference_example(clip, mel, labels, embedding)])
    adapted = adaptation.adapt(converter_model, [converter_model.adaptation_example(mel, labels, embedding)])

A synthesizer conditioned on a speaker embedding renders a voice it never heard near the voices
it knows. The reference clip is itself a training example once its phones are known (the
Whisper transcript aligned by pocketsphinx that phone matching already uses) and its pitch
measured: tokens with their frame counts, the phone pitch and the mel. A few steps of Adam on
the decoder, its output layer and the post-net, on a copy of the model, move the rendering
towards that voice's own spectra (speaker adaptation, as in Arik et al., "Neural voice cloning
with a few samples", 2018); the text encoder and the duration and pitch predictors stay as
trained, so what is said and its timing do not learn the reference's sentence.

Adapted all the way, the copy also learns the reference's few sentences and loses words of new
ones; the weights returned lie half-way between the trained and the adapted ones (a weight-space
ensemble, as WiSE-FT does for fine-tuned classifiers, Wortsman et al. 2022), which keeps most of
the gain in voice and nearly all the words.

Chosen on voices made from training speakers, never the held-out ones: 12 LibriSpeech training
speakers shifted by +-250 cents (a shift no training copy has), one clip each as the reference,
LJSpeech sentences, Whisper-base WER. Similarity to the reference / WER:
- as trained: 0.790 / 18.9 %;
- 40 steps at 3e-4 on decoder, out and post-net, half-way: 0.822 / 19.8 % (the default);
- the same steps, the two outputs' mels averaged instead: 0.816 / 20.3 %;
- 20 steps at 2e-4, half-way in mel: 0.809 / 19.1 %; 70 % of the way: 0.817 / 21.2 %;
- 10 steps at 2e-4, all the way: 0.810 / 22.9 %; 20 steps at 1e-4: 0.815 / 23.7 %;
- with 4 training utterances replayed at every step, 20 steps at 2e-4: 0.818 / 22.8 %;
- only the norms and biases (1e-3): 0.791 / 18.3 %; on 6 of these voices, only the
  conditioning layers 0.826 vs 0.825, out and post-net only 0.836 vs 0.825 (+1.3 WER points).
Checked again on `scripts/dev_clone_protocol.py` (12 training speakers, seed 0, at +-250 cents,
the two halves of one clip as references, LJSpeech's held-out sentences, 24 trials), all with
phone matching: as trained 0.785 / 7.7 %; adapted as above 0.816 / 9.5 %; without matching
after adapting 0.770 / 8.4 %; matching with prior_frames 60 0.812 / 8.8 %. Learning the speaker
embedding instead of the weights (Adam at 1e-3 or 3e-3, 40 steps) gave nothing, 0.782 / 9.5 %
and 0.777 / 9.8 %, and with the weights 0.818 / 10.9 %, so it is not an option here.

The phonetic converter (`PhoneticVC`) adapts the same way: its decoder re-speaks each reference
clip from the clip's own content (the transcript's phones, or the recogniser's, and the melody
its encoder reads), in 2 s segments trained as one batch (`PhoneticVC.adaptation_example`),
while the recogniser stays as trained. The synthesizer's settings were taken over unchanged
and checked on `scripts/dev_protocol.py --shift-cents 250` (LJSpeech training clips into 16
LibriSpeech training speakers shifted by +-250 cents, voices the converter never heard, one
clip of 11 s or more as the reference; 40 trials, transcript and phone matching on):
as trained 0.786 / 19.3 % WER / DNSMOS OVRL 2.28; adapted 0.821 / 17.6 % / 2.29, closer to
the voice on 38 of 40 trials (2.1 s of compute per second of speech against 0.55, one thread
beside other work). Adapting only the decoder's output layer and post-net (`modules=
("decoder.out", "decoder.postnet")`) gave half the gain for 60 % of the cost: 0.805 / 18.2 % /
2.31, 1.3 s per second (before the frozen part was run once per adaptation; now cheaper still).
On `reports/real-50`, in one run with the unadapted converter (0.755 / 50 % accepted / 15.1 % WER /
OVRL 2.24): the whole decoder 0.793 / 70 % / 17.6 % / 2.23, past the WER goal; the output layer
and post-net 0.770 / 62 % / 14.8 % / 2.21, which keeps the words (the shipped default). The dev
protocol above did not show the whole decoder's cost in words; the two variants were compared on
real-50 itself, so `reports/lj-50` and `reports/synthetic-50`, not looked at before, are the
check of that choice (README: the default's figures there).
"""
from __future__ import annotations

import copy
import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from .data.phones import PHONES
from .pitch import f0_contour, normalized_log_f0


@dataclass(frozen=True)
class ReferenceAdaptation:
    """Fine-tune a copy of a synthesizer on its reference clips (see the module).

    Args:
        steps: Adam steps (each on all the reference clips).
        learning_rate: Adam's step size.
        modules: the submodules that learn (dotted names; the rest stay frozen); None: the
            model's own `adaptable_modules` (a synthesizer's decoder, output layer and post-net;
            a phonetic converter's decoder).
        interpolation: how far the returned weights go from the trained ones to the adapted
            ones (1: all the way; 0.5: half-way, which keeps the words, see the module).
    """

    steps: int = 40
    learning_rate: float = 3e-4
    modules: tuple[str, ...] | None = None
    interpolation: float = 0.5

    def __post_init__(self):
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or not 1 <= self.steps <= 500:
            raise ValueError(f"steps must be a whole number from 1 to 500, got {self.steps!r}")
        if not 0 < float(self.learning_rate) <= 1e-2:
            raise ValueError(f"learning_rate must be in (0, 0.01], got {self.learning_rate!r}")
        if not 0 < float(self.interpolation) <= 1:
            raise ValueError(f"interpolation must be in (0, 1], got {self.interpolation!r}")
        if self.modules is not None and (isinstance(self.modules, str) or not self.modules):
            raise ValueError("name at least one module to adapt as a tuple, e.g. ('decoder',), or None "
                             "for the model's own choice")
        if self.modules is not None:  # a JSON list (models.json) becomes the tuple it stands for
            object.__setattr__(self, "modules", tuple(str(m) for m in self.modules))

    def learning_modules(self, model: torch.nn.Module) -> tuple[str, ...]:
        """The names of `model`'s submodules this adaptation trains."""
        modules = self.modules if self.modules is not None else getattr(model, "adaptable_modules", None)
        if not modules:
            raise ValueError(f"a {type(model).__name__} cannot be adapted to a reference: it names no "
                             "adaptable modules")
        names = dict(model.named_modules())
        missing = [m for m in modules if m not in names]
        if missing:
            children = ", ".join(n for n, _ in model.named_children())
            raise ValueError(f"the {type(model).__name__} has no module {', '.join(missing)}; it has {children}")
        return tuple(modules)

    def adapt(self, model: torch.nn.Module, examples: Sequence[dict[str, torch.Tensor]],
              progress: Callable[[float, str], None] | None = None) -> torch.nn.Module:
        """A float32 copy of `model` trained `steps` steps on `examples` (a synthesizer's from
        `reference_example`, a converter's from its `adaptation_example`), all in every step, so
        each clip weighs by its frames (a 2 s clip taking every other step overfits its few
        phones); the original is not touched. With no examples, the original. A model with an
        `adaptation_loss(examples)` is trained on it, others on their training `loss` of one
        padded batch. `progress(fraction, what)` is called after every step (the adaptation is
        most of a first request's time)."""
        if not examples:
            return model
        modules = self.learning_modules(model)
        trained_model = model
        with torch.inference_mode(False), torch.enable_grad():
            model = copy.deepcopy(trained_model).float().train()
            device = next(model.parameters()).device
            examples = [{k: v.clone().to(device) for k, v in e.items()} for e in examples]
            if hasattr(model, "adaptation_loss"):
                loss_of = lambda: model.adaptation_loss(examples)  # noqa: E731
            else:
                batch = collate(examples)
                loss_of = lambda: model.loss(batch)[0]  # noqa: E731
            for parameter in model.parameters():
                parameter.requires_grad_(False)
            learning = [p for m in modules for p in model.get_submodule(m).parameters()]
            for parameter in learning:
                parameter.requires_grad_(True)
            optimizer = torch.optim.Adam(learning, lr=float(self.learning_rate))
            for step in range(self.steps):
                loss = loss_of()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if progress:
                    progress((step + 1) / self.steps, f"adapting to the reference: step {step + 1} of {self.steps}")
            for parameter in model.parameters():
                parameter.requires_grad_(False)
            if self.interpolation < 1:
                trained = trained_model.state_dict()
                with torch.no_grad():
                    for name, parameter in model.named_parameters():
                        start = trained[name].to(parameter)
                        parameter.copy_(start + float(self.interpolation) * (parameter - start))
        return model.eval()


class AdaptedModels:
    """The last `size` adapted copies by the reference they learnt, so a voice used again (a
    preset voice of the demo, the same reference for several sentences or sources) is adapted
    once. Safe to share between threads."""

    def __init__(self, size: int = 4):
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"size must be a whole number of at least 0, got {size!r}")
        self.size = size
        self._models: OrderedDict[str, torch.nn.Module] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, build: Callable[[], torch.nn.Module]) -> torch.nn.Module:
        """The model kept under `key`, else `build()`'s (then kept, the oldest dropped)."""
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
        model = build()  # outside the lock: adapting takes seconds, other voices need not wait
        if self.size:
            with self._lock:
                self._models[key] = model
                self._models.move_to_end(key)
                while len(self._models) > self.size:
                    self._models.popitem(last=False)
        return model

    def __len__(self) -> int:
        return len(self._models)


def reference_key(*parts) -> str:
    """A digest of what an adaptation learns from: tensors and arrays by their values, anything
    else by its repr (the settings)."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, torch.Tensor):
            part = part.detach().cpu().numpy()
        if isinstance(part, np.ndarray):
            digest.update(f"{part.dtype}{part.shape}".encode())
            digest.update(np.ascontiguousarray(part).tobytes())
        else:
            digest.update(repr(part).encode())
    return digest.hexdigest()


def collate(examples: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """One padded batch of single-item examples (tokens padded with PAD and 0 frames, mels with
    their own quietest value; the loss masks both by the frame counts)."""
    from .models.synthesizer import PAD

    if len(examples) == 1:
        return dict(examples[0])
    n = max(e["tokens"].shape[1] for e in examples)
    t = max(e["mel"].shape[-1] for e in examples)
    out = {"tokens": torch.full((len(examples), n), PAD, dtype=torch.long),
           "durations": torch.zeros(len(examples), n, dtype=torch.long),
           "pitch": torch.zeros(len(examples), n),
           "mel": torch.stack([e["mel"][0].new_full((e["mel"].shape[1], t), float(e["mel"].min()))
                               for e in examples]),
           "embedding": torch.cat([e["embedding"] for e in examples])}
    for b, e in enumerate(examples):
        k = e["tokens"].shape[1]
        for key in ("tokens", "durations", "pitch"):
            out[key][b, :k] = e[key][0]
        out["mel"][b, :, :e["mel"].shape[-1]] = e["mel"][0]
    return out


def labels_to_tokens(labels: torch.Tensor, symbol_index: dict[str, int],
                     silence_token: int) -> tuple[list[int], list[int]]:
    """Synthesizer tokens and their frame counts from frame phone labels (`PHONES` indices):
    each run of one label is one token, silence is `silence_token`."""
    tokens: list[int] = []
    lengths: list[int] = []
    for label in labels.tolist():
        token = silence_token if label == 0 else symbol_index[PHONES[int(label)]]
        if tokens and tokens[-1] == token:
            lengths[-1] += 1
        else:
            tokens.append(token)
            lengths.append(1)
    return tokens, lengths


def reference_example(samples: np.ndarray, sample_rate: int, mel: torch.Tensor, labels: torch.Tensor,
                      embedding: np.ndarray, hop_length: int) -> dict[str, torch.Tensor]:
    """One training batch (as `DurationSynthesizer.loss` takes it) from a reference clip: its
    mel (n_mels, T), frame phone labels (T,), GE2E embedding (256,), and its pitch (pYIN)."""
    from .models.synthesizer import SIL, phone_pitch
    from .text import SYMBOL_INDEX

    frames = mel.shape[-1]
    if labels.shape != (frames,):
        raise ValueError(f"expected {frames} frame labels for the mel, got {tuple(labels.shape)}")
    tokens, lengths = labels_to_tokens(labels, SYMBOL_INDEX, SIL)
    z, voiced = normalized_log_f0(f0_contour(samples, sample_rate, hop_length)[:frames])
    pad = frames - len(z)
    z, voiced = (torch.from_numpy(np.pad(a, (0, pad))) for a in (z, voiced))
    return {"tokens": torch.tensor(tokens)[None], "durations": torch.tensor(lengths)[None],
            "pitch": phone_pitch(lengths, z, voiced)[None].float(), "mel": mel.detach().float()[None],
            "embedding": torch.as_tensor(np.asarray(embedding), dtype=torch.float32)[None]}


__all__ = ["AdaptedModels", "ReferenceAdaptation", "collate", "labels_to_tokens", "reference_example",
           "reference_key"]

"""The catalogue of synthetic speakers: engine voices, and shifted variants of them.

Flite and festival have seven voices between them (two pairs share a recorded speaker), so most
synthetic speakers are variants. Three knobs, chosen because each is real and measurable:

  shift_cents  sox `pitch` after synthesis. It resamples and time-stretches, so it moves the
               whole spectrum, pitch *and* formants, keeping the duration: a smaller or larger
               speaker. (sox has no formant-preserving pitch shift.)
  f0_scale     the engine's own pitch control (flite f0_shift, festival's diphone intonation
               target), which moves pitch alone. With shift_cents it gives formant-only moves:
               shift +c and f0_scale 2**(-c/1200) keeps the pitch and moves the formants.
  tempo        sox `tempo` after synthesis (alignments are rescaled by 1/tempo).

espeak-ng brings many voices of its own (accent x variant, with its own pitch and rate).
`voice_catalogue(seed)` orders them so that taking the first N spreads over the engines.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

from vc.data.engines import ENGINES, ESPEAK_DEFAULT_PITCH, ESPEAK_DEFAULT_RATE


@dataclass(frozen=True)
class VoiceSpec:
    """One synthetic speaker.

    Args:
        name: speaker id, e.g. "flite-slt" or "festival-ked-deep"; used as a folder name.
        engine: "flite", "festival" or "espeak".
        voice: the engine's voice name ("slt", "ked_diphone", "en-us+m3").
        shift_cents: sox pitch shift of the whole spectrum after synthesis (100 = a semitone).
        f0_scale: the engine's own pitch factor (flite and festival diphone voices).
        tempo: speaking-rate factor after synthesis (> 1 faster, shorter audio).
        engine_pitch, engine_rate: espeak-ng's own -p (0-99) and -s (words per minute).
    """

    name: str
    engine: str
    voice: str
    shift_cents: float = 0.0
    f0_scale: float = 1.0
    tempo: float = 1.0
    engine_pitch: int = ESPEAK_DEFAULT_PITCH
    engine_rate: int = ESPEAK_DEFAULT_RATE

    @property
    def has_effects(self) -> bool:
        """Whether sox runs after the engine."""
        return self.shift_cents != 0.0 or self.tempo != 1.0

    @property
    def is_variant(self) -> bool:
        return self.has_effects or self.f0_scale != 1.0

    @property
    def time_scale(self) -> float:
        """How much longer the output is than the engine's audio (alignments scale by this)."""
        return 1.0 / self.tempo

    def sox_effects(self) -> list[str]:
        """sox effect arguments (the caller appends the output rate)."""
        effects: list[str] = []
        if self.shift_cents != 0.0:
            effects += ["pitch", f"{self.shift_cents:.1f}"]
        if self.tempo != 1.0:
            effects += ["tempo", "-s", f"{self.tempo:.4f}"]
        return effects

    def as_dict(self) -> dict:
        return asdict(self)


# Flite and festival speakers: (name, engine, voice, shift cents, f0 scale, tempo).
# Tuned with `python -m vc.data speaker-report`: the speaker encoder hears the spectral shift
# most (about 0.8 cosine per 250 cents), pitch alone less, tempo not at all. So each recorded
# speaker gets shift slots about 250 cents apart, and voices that share a recorded speaker (flite
# kal16 and festival kal_diphone; flite slt and festival's HTS slt) take different slots.
# Only the plain voices (first of each group) sound like the engine's original speaker.
_ENGINE_VOICES = [
    # kal (US male): flite kal16 and festival kal_diphone are the same recordings
    ("flite-kal", "flite", "kal16", 0, 1.0, 1.0),
    ("festival-kal-bright", "festival", "kal_diphone", 250, 0.85, 1.0),
    ("flite-kal-deep", "flite", "kal16", -450, 1.1, 0.95),
    ("festival-kal-young", "festival", "kal_diphone", 500, 1.2, 1.05),
    ("flite-kal-alto", "flite", "kal16", 900, 0.8, 1.0),
    ("festival-kal-low", "festival", "kal_diphone", -200, 0.75, 0.9),
    # ked (US male, festival)
    ("festival-ked", "festival", "ked_diphone", 0, 1.0, 1.0),
    ("festival-ked-deep", "festival", "ked_diphone", -350, 1.0, 1.0),
    ("festival-ked-bright", "festival", "ked_diphone", 300, 0.85, 1.0),
    ("festival-ked-slow", "festival", "ked_diphone", -650, 0.9, 0.88),
    # awb (Scottish male, flite)
    ("flite-awb", "flite", "awb", 0, 1.0, 1.0),
    ("flite-awb-deep", "flite", "awb", -350, 1.0, 0.95),
    ("flite-awb-bright", "flite", "awb", 300, 0.85, 1.0),
    ("flite-awb-young", "flite", "awb", 600, 1.15, 1.08),
    # rms (US male, flite; its pitch is fixed, so shifts only)
    ("flite-rms", "flite", "rms", 0, 1.0, 1.0),
    ("flite-rms-deep", "flite", "rms", -350, 1.0, 1.0),
    ("flite-rms-bright", "flite", "rms", 300, 1.0, 0.92),
    ("flite-rms-young", "flite", "rms", 650, 1.0, 1.05),
    # slt (US female): flite slt and festival's HTS slt (0.92 alike unshifted); HTS ignores f0 scale
    ("flite-slt", "flite", "slt", 0, 1.0, 1.0),
    ("festival-slt-light", "festival", "cmu_us_slt_arctic_hts", 200, 1.0, 1.0),
    ("flite-slt-low", "flite", "slt", -300, 0.8, 1.0),
    ("festival-slt-deep", "festival", "cmu_us_slt_arctic_hts", -550, 1.0, 0.95),
    ("flite-slt-tenor", "flite", "slt", -800, 0.9, 1.0),
    ("festival-slt-bright", "festival", "cmu_us_slt_arctic_hts", 450, 1.0, 1.08),
    ("flite-slt-girl", "flite", "slt", 700, 0.9, 1.0),
]

# espeak-ng: (accent voice, variant, pitch 0-99, words per minute). "en" is British English
# (libespeak-ng resolves "en" but not "en-gb" by name). Picked greedily from ~50 accent x
# variant pairs so that no two speaker means are above 0.85 cosine.
_ESPEAK = [
    ("en-us", "m1", 50, 170), ("en", "m2", 50, 165), ("en-gb-x-gbclan", "m7", 45, 160),
    ("en-us", "f1", 55, 175), ("en-gb-scotland", "f3", 50, 165), ("en-us-nyc", "klatt", 50, 180),
    ("en-gb-x-rp", "Alicia", 50, 170), ("en-us-nyc", "grandma", 50, 150), ("en-gb-x-gbclan", "benjamin", 50, 165),
    ("en-gb-x-gbcwmd", "belinda", 50, 170), ("en-us", "anika", 50, 175), ("en-gb-scotland", "boris", 45, 160),
    ("en-029", "david", 50, 165), ("en-gb-scotland", "paul", 50, 170), ("en-gb-x-rp", "quincy", 50, 175),
    ("en-gb-x-gbcwmd", "travis", 50, 165), ("en-us", "victor", 45, 160), ("en", "zac", 55, 180),
    ("en-us-nyc", "Lee", 50, 170), ("en-gb-x-rp", "sandro", 50, 160),
]


def full_catalogue() -> list[VoiceSpec]:
    """Every synthetic speaker we know how to make, in a fixed order."""
    voices = [VoiceSpec(name, engine, voice, float(shift), f0, tempo)
              for name, engine, voice, shift, f0, tempo in _ENGINE_VOICES]
    for accent, variant, pitch, rate in _ESPEAK:
        name = f"espeak-{accent}-{variant}".lower()
        voices.append(VoiceSpec(name, "espeak", f"{accent}+{variant}", engine_pitch=pitch, engine_rate=rate))
    return voices


def voice_catalogue(seed: int = 0, available: dict[str, set[str]] | None = None) -> list[VoiceSpec]:
    """Speakers in a seeded order that spreads across engines: take the first N.

    Within each engine, its plain voices come first (seed-shuffled), then its variants
    (seed-shuffled); the engines then take turns. With `available` (engine -> voice names),
    voices of missing engines or voices are left out.
    """
    rng = random.Random(f"voicelab-voices-{seed}")
    queues = []
    for engine in ENGINES:
        voices = [v for v in full_catalogue() if v.engine == engine and _is_available(v, available)]
        plain = [v for v in voices if not v.is_variant and v.engine != "espeak"]
        rest = [v for v in voices if v not in plain]
        rng.shuffle(plain)
        rng.shuffle(rest)
        queues.append(plain + rest)
    ordered = []
    while any(queues):
        for queue in queues:
            if queue:
                ordered.append(queue.pop(0))
    return ordered


def _is_available(voice: VoiceSpec, available: dict[str, set[str]] | None) -> bool:
    if available is None:
        return True
    names = available.get(voice.engine, set())
    if voice.engine == "espeak":
        return voice.voice.split("+")[0] in names or (voice.voice.startswith("en+") and bool(names))
    return voice.voice in names

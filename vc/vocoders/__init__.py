"""Vocoders: mel frames -> waveform."""
from .ddsp import HarmonicNoiseVocoder
from .griffinlim import GriffinLim
from .hifigan import HiFiGAN, import_official_hifigan

__all__ = ["GriffinLim", "HarmonicNoiseVocoder", "HiFiGAN", "import_official_hifigan"]

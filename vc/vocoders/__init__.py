"""Vocoders: mel frames -> waveform."""
from .griffinlim import GriffinLim
from .hifigan import HiFiGAN, import_official_hifigan

__all__ = ["GriffinLim", "HiFiGAN", "import_official_hifigan"]

"""Vocoders: mel frames -> waveform."""
from .griffinlim import GriffinLim

__all__ = ["GriffinLim"]

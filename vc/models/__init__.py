"""Voice-conversion model families; each is a `ConversionModel` saved and loaded by `vc.hub`."""
from .base import ContentFrames, ConversionModel, pad_to_multiple

__all__ = ["ContentFrames", "ConversionModel", "pad_to_multiple"]

"""HiFi-GAN vocoders: the generator and an importer for officially released weights."""
from .generator import HiFiGAN
from .official import import_official_hifigan

__all__ = ["HiFiGAN", "import_official_hifigan"]

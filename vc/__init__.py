"""voicelab: voice conversion and voice cloning.

The public API: audio in and out (`Audio`, `load_audio`, `prepare_speech`), features
(`MelConfig`, `MelSpectrogram`), the speaker encoder (`SpeakerEncoder`), vocoders and models.
"""
from .audio import Audio, SpeechLimits, load_audio, prepare_speech
from .errors import AudioError, CheckpointError, ModelNotFoundError, VoicelabError
from .mel import MelConfig, MelSpectrogram

__version__ = "0.1.0"

__all__ = [
    "Audio", "SpeechLimits", "load_audio", "prepare_speech", "MelConfig", "MelSpectrogram",
    "AudioError", "CheckpointError", "ModelNotFoundError", "VoicelabError", "SpeakerEncoder",
    "VoiceConverter",
]


def __getattr__(name):
    # The speaker encoder pulls in torch.nn weights on use; import it lazily.
    if name == "SpeakerEncoder":
        from .speaker import SpeakerEncoder
        return SpeakerEncoder
    if name == "VoiceConverter":
        from .pipeline import VoiceConverter
        return VoiceConverter
    raise AttributeError(f"module 'vc' has no attribute {name!r}")

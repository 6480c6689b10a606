"""Exceptions that say what went wrong and what would work instead.

Every error a user can cause by handing us a bad file, a wrong model name or a damaged
checkpoint is one of these, so front ends (CLI, Gradio) can show the message as it is.
"""


class VoicelabError(Exception):
    """Base class of every error voicelab raises on purpose."""


class AudioError(VoicelabError, ValueError):
    """The audio given cannot be used: unreadable, empty, silent, too short or too long, NaN."""


class CheckpointError(VoicelabError):
    """A model folder exists but its files are missing, corrupt or do not match the model."""


class ModelNotFoundError(VoicelabError, FileNotFoundError):
    """No model could be found under the given name; the message lists every place tried."""

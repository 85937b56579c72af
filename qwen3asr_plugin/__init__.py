"""qwen3asr-plugin: local speech-to-subtitles with Qwen3-ASR, as a plugin for media tools.

The API loads lazily so that `import qwen3asr_plugin` (and the CLI's start-up) stays cheap.
"""

from .hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["ASRModel", "Aligner", "Segment", "TranscriptionInfo", "Word", "__version__", "hookimpl"]


def __getattr__(name: str):
    if name in ("ASRModel", "Aligner", "Segment", "TranscriptionInfo", "Word"):
        from . import api

        return getattr(api, name)
    raise AttributeError(name)

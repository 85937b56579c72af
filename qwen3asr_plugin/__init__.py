"""qwen3asr-plugin: local speech-to-subtitles with Qwen3-ASR, as a plugin for media tools.

The records, the error base and the hook markers load with the package and pull in nothing heavy, so a
format or post-processing plugin stays light; the models, the runner and the rest of the API load on first
use (and `import qwen3asr_plugin`, like the CLI's start-up, stays cheap).
"""

from .engine import __version__
from .engine.errors import Qwen3ASRError
from .engine.records import Cue, Segment, Transcript, TranscriptionInfo, Word
from .hookspecs import Engine, hookimpl

_LAZY = (
    "ASRModel",
    "Aligner",
    "Cancelled",
    "RunOptions",
    "Transcription",
    "load_engine",
    "output_formats",
    "render_subtitles",
    "transcribe_to_transcript",
)
__all__ = [
    "Cue",
    "Engine",
    "Qwen3ASRError",
    "Segment",
    "Transcript",
    "TranscriptionInfo",
    "Word",
    "__version__",
    "hookimpl",
    *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        from . import api

        return getattr(api, name)
    raise AttributeError(name)

"""What Subtitle Edit 5's own speech-to-text needs to use `qwen3asr serve` (its OpenAI-compatible engine):
the settings, and the line that says them (`qwen3asr serve`'s startup, `qwen3asr hosts install
subtitle-edit`). SE's names: SeTools.OpenAiCompatibleStt*, SeAudioToText.WhisperChoice
(SubtitleEdit/subtitleedit, src/ui/Logic/Config/)."""

from __future__ import annotations

from .engine.model_store import DEFAULT_MODEL

SE_ENGINE = "OpenAI Compatible"
SE_URL = "http://127.0.0.1:8000/v1/audio/transcriptions"
SE_AUDIO_FORMAT = "wav"
SE_TIMEOUT_SECONDS = 3600


def engine_instructions(url: str = SE_URL, model: str = DEFAULT_MODEL) -> str:
    """What to set in SE's Video > Speech to text for `qwen3asr serve`, and why (README, Subtitle Edit)."""
    return (
        f"Subtitle Edit's Video > Speech to text: engine {SE_ENGINE!r}, URL {url}, model {model} (any name "
        f"works: the server uses the model it loaded), audio format {SE_AUDIO_FORMAT} (SE then sends at most "
        f"about 12.6 min per request instead of 105 min of mp3), timeout {SE_TIMEOUT_SECONDS} s (SE's 300 s "
        "ends any request longer than about 20 min of audio on a 2-core CPU); then run `qwen3asr serve`"
    )

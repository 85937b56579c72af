"""qwen3asr-plugin: local speech-to-subtitles with Qwen3-ASR, as a plugin for media tools."""

__version__ = "0.1.0"

"""The public Python API, in the style of faster-whisper: load once, then transcribe lazily.

from qwen3asr_plugin import ASRModel
model = ASRModel("qwen3-asr-0.6b")            # a preset name (pulled on first use) or a model folder
segments, info = model.transcribe("talk.wav", language=None, context="names: Qwen, Whisper")
for s in segments:                             # work happens here, chunk by chunk
    print(s.start, s.end, s.text)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .engine.audio import load_audio, to_mono_16k
from .engine.decoder import DecoderOptions
from .engine.encoder import EncoderOptions
from .engine.model_folder import load_model_info
from .engine.model_store import resolve_model
from .engine.pipeline import AsrPipeline, Segment, TranscribeOptions, TranscriptionInfo, Word

__all__ = ["ASRModel", "Segment", "TranscriptionInfo", "Word"]


class ASRModel:
    """A Qwen3-ASR model loaded once (encoder sessions and llama.cpp decoder)."""

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        *,
        device: str = "auto",
        device_index: int = 0,
        encoder_precision: str | None = None,
        decoder_quant: str | None = None,
        threads: int = 0,
        gpu_layers: int | None = None,
        download: bool = True,
    ):
        folder = resolve_model(model, pull_missing=download)
        self.info = load_model_info(folder)
        if gpu_layers is None:
            gpu_layers = 0 if device == "cpu" else -1
        self.pipeline = AsrPipeline(
            self.info,
            EncoderOptions(
                precision=encoder_precision, device=device, device_index=device_index, threads=threads
            ),
            DecoderOptions(
                quant=decoder_quant, threads=threads, gpu_layers=gpu_layers, device_index=device_index
            ),
        )

    @property
    def folder(self) -> Path:
        return self.info.folder

    def transcribe(
        self,
        audio: str | os.PathLike | np.ndarray,
        *,
        language: str | None = None,
        context: str | None = None,
        sampling_rate: int = 16000,
        chunk_seconds: float = 30.0,
        temperature_fallback: bool = True,
    ) -> tuple[Iterator[Segment], TranscriptionInfo]:
        """Segments (a lazy iterator) and info for a file path or a float array at `sampling_rate`."""
        samples = to_mono_16k(audio, sampling_rate) if isinstance(audio, np.ndarray) else load_audio(audio)
        options = TranscribeOptions(
            language=language,
            context=context or "",
            chunk_seconds=chunk_seconds,
            temperature_fallback=temperature_fallback,
        )
        return self.pipeline.transcribe_array(samples, options)

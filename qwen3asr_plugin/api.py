"""The public Python API, in the style of faster-whisper: load once, then transcribe lazily.

from qwen3asr_plugin import ASRModel
model = ASRModel("qwen3-asr-0.6b")            # a preset name (pulled on first use) or a model folder
segments, info = model.transcribe("talk.wav", language=None, context="names: Qwen, Whisper")
for s in segments:                             # work happens here, chunk by chunk
    print(s.start, s.end, s.text)
"""

from __future__ import annotations

import os
import sys
import sysconfig
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from importlib import metadata
from pathlib import Path

import numpy as np

from .engine.aligner import ForcedAligner
from .engine.audio import SAMPLE_RATE, iter_audio, load_audio, to_mono_16k
from .engine.chunking import ChunkOptions
from .engine.cues import TimedWord, break_lines, timed_words
from .engine.decoder import DecoderOptions
from .engine.encoder import EncoderOptions
from .engine.errors import Qwen3ASRError
from .engine.files import write_atomic
from .engine.languages import ISO639_2, ISO_CODES, canonical_language
from .engine.media import ffmpeg_exe, is_url, probe
from .engine.model_folder import load_model_info
from .engine.model_store import DEFAULT_MODEL, preset_aligner, presets, resolve_model
from .engine.pipeline import AsrPipeline, TranscribeOptions
from .engine.records import Cue, Segment, Transcript, TranscriptionInfo, Word
from .engine.vad import vad_options
from .engine.writers import render
from .hookspecs import Engine
from .options import cli_parents, engine_options, read_replacements, run_options
from .plugins import registry
from .runner import Cancelled, RunOptions, Transcription, transcribe_to_transcript
from .se_settings import SE_AUDIO_FORMAT, SE_ENGINE, SE_TIMEOUT_SECONDS, SE_URL, engine_instructions

__all__ = [
    "ISO639_2",
    "ASRModel",
    "Aligner",
    "Cancelled",
    "Cue",
    "Engine",
    "Qwen3ASRError",
    "RunOptions",
    "Segment",
    "Transcript",
    "Transcription",
    "TranscriptionInfo",
    "Word",
    "cli_parents",
    "engine_options",
    "ffmpeg_exe",
    "load_engine",
    "output_formats",
    "probe",
    "read_replacements",
    "render_subtitles",
    "run_options",
    "transcribe_to_transcript",
    "write_atomic",
    "SAMPLE_RATE",
    "DEFAULT_MODEL",
    "ISO_CODES",
    "presets",
    "SE_AUDIO_FORMAT",
    "SE_ENGINE",
    "SE_TIMEOUT_SECONDS",
    "SE_URL",
    "engine_instructions",
    "TimedWord",
    "break_lines",
    "installed_script",
    "is_url",
    "iter_audio",
    "timed_words",
]


def load_engine(name: str = "local", **options) -> Engine:
    """An engine registered by any plugin (`local`, `openai`, ...), built with `options`; each engine takes
    the options it knows (model, aligner, device, endpoint, ...) and ignores the rest."""
    engines = registry("register_engines")
    if name not in engines:
        raise Qwen3ASRError(f"unknown engine {name!r}; installed: {', '.join(engines)}")
    return engines[name].value(**options)


def output_formats() -> dict:
    """Registered output formats: name -> writer(transcript) -> str."""
    return {name: entry.value for name, entry in registry("register_output_formats").items()}


def render_subtitles(transcript: Transcript, format: str = "srt") -> str:
    """The text of a transcript (from `transcribe_to_transcript`) in a registered output format."""
    return render(format, transcript, output_formats())


def _gpu_asked(device: str | None) -> bool:
    return (device or "auto").lower() in ("gpu", "cuda", "dml", "directml")


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
        aligner: str | os.PathLike | bool | None = True,
        download: bool = True,
        progress: Callable[[str], None] | None = None,
        **_ignored,
    ):
        """`aligner`: True for the preset's own aligner (none for a bare model folder), a preset name or a
        folder, or False/None for no word timings. Missing presets are downloaded and converted when
        `download`; `progress(message)` hears how that goes. Options meant for other engines are ignored."""
        self.info = load_model_info(resolve_model(model, pull_missing=download, progress=progress))
        if gpu_layers is None:
            gpu_layers = 0 if device == "cpu" else -1
        encoder = EncoderOptions(
            precision=encoder_precision, device=device, device_index=device_index, threads=threads
        )
        decoder = DecoderOptions(
            quant=decoder_quant,
            threads=threads,
            gpu_layers=gpu_layers,
            device_index=device_index,
            gpu_asked=_gpu_asked(device),
        )
        if aligner is True:
            aligner = preset_aligner(model)
        self.aligner = (
            Aligner(aligner, _options=(encoder, decoder), download=download, progress=progress)
            if aligner
            else None
        )
        self.pipeline = AsrPipeline(
            self.info, encoder, decoder, self.aligner.engine if self.aligner else None
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
        sampling_rate: int = SAMPLE_RATE,
        chunk_seconds: float = ChunkOptions.max_seconds,
        temperature_fallback: bool = True,
        vad_filter: bool = True,
        vad_parameters: Mapping[str, float] | None = None,
        audio_track: int = 0,
        on_progress: Callable[[float], None] | None = None,
        start_seconds: float | None = None,
        batch_size: int | None = None,
        first_batch_size: int | None = None,
        end_seconds: float | None = None,
    ) -> tuple[Iterator[Segment], TranscriptionInfo]:
        """Segments (a lazy iterator) and info for a media file path or a float array at `sampling_rate`.

        Files are decoded by ffmpeg and read in blocks as the segments are consumed, so memory does not grow
        with the length of the input. `vad_filter` transcribes only the speech Silero VAD finds
        (`vad_parameters`: VadOptions fields to change); `audio_track` picks a stream.
        `start_seconds` transcribes from there to the end first, then the beginning (what a player wants:
        subtitles where the viewer is, soonest); `on_progress` then counts seconds done in that order.
        `batch_size` chunks are decoded together (default 4: faster; their segments arrive together); `first_batch_size`
        1 gets the first segment out soonest (for progressive outputs; the first chunk is at most 10 s long
        in any case). `end_seconds` transcribes the one
        window [start_seconds, end_seconds) of a file and nothing else (the runner fills the gaps of a resumed
        transcript so); `on_progress` then gets the position reached."""
        options = TranscribeOptions(
            language=language,
            context=context or "",
            temperature_fallback=temperature_fallback,
            chunking=ChunkOptions(
                max_seconds=chunk_seconds,
                vad=vad_options(vad_parameters) if vad_filter else None,
                join_regions=self.aligner is not None,  # words need their own times across the joins
            ),
            batch_size=batch_size or TranscribeOptions.batch_size,
            first_batch_size=first_batch_size,
        )
        if isinstance(audio, np.ndarray):
            samples = to_mono_16k(audio, sampling_rate)
            return self.pipeline.transcribe_stream(
                [samples], options, samples.size / SAMPLE_RATE, on_progress
            )
        from .plugins import hook

        blocks = hook().load_audio(source=str(audio), sample_rate=SAMPLE_RATE, audio_track=audio_track)
        duration = None
        if blocks is None:  # no plugin reads this source: ffmpeg does
            duration = probe(audio).duration
            if end_seconds is not None:
                start = max(0.0, start_seconds or 0.0)
                window = iter_audio(
                    audio, audio_track, start_seconds=start, duration_seconds=end_seconds - start
                )
                return self.pipeline.transcribe_stream(
                    window, options, duration, on_progress, start_seconds=start
                )
            if start_seconds and duration and 0 < start_seconds < duration - 1:
                return self._from_position(audio, audio_track, options, duration, start_seconds, on_progress)
            blocks = iter_audio(audio, audio_track)
        return self.pipeline.transcribe_stream(blocks, options, duration, on_progress)

    def _from_position(self, audio, audio_track, options, duration, start, on_progress):
        """Two passes over one file: [start, end), then [0, start); segment ids run on across both."""
        tail_seconds = duration - start
        first, info = self.pipeline.transcribe_stream(
            iter_audio(audio, audio_track, start_seconds=start),
            options,
            duration,
            on_progress and (lambda s: on_progress(s - start)),
            start_seconds=start,
        )

        def both():
            count = 0
            for segment in first:
                yield replace(segment, id=count)
                count += 1
            head, head_info = self.pipeline.transcribe_stream(
                iter_audio(audio, audio_track, duration_seconds=start),
                options,
                start,
                on_progress and (lambda s: on_progress(tail_seconds + s)),
            )
            for segment in head:
                yield replace(segment, id=count)
                count += 1
            info.languages.extend(x for x in head_info.languages if x not in info.languages)
            info.language = info.language or head_info.language

        return both(), info


class Aligner:
    """Qwen3-ForcedAligner alone: word and character timings for a transcript you already have."""

    def __init__(
        self,
        model: str | os.PathLike = "qwen3-forcedaligner-0.6b",
        *,
        device: str = "auto",
        device_index: int = 0,
        gpu_layers: int | None = None,
        threads: int = 0,
        decoder_quant: str | None = None,
        download: bool = True,
        progress: Callable[[str], None] | None = None,
        _options: tuple[EncoderOptions, DecoderOptions] | None = None,
    ):
        self.info = load_model_info(resolve_model(model, pull_missing=download, progress=progress))
        if gpu_layers is None:
            gpu_layers = 0 if device == "cpu" else -1
        encoder, decoder = _options or (
            EncoderOptions(device=device, device_index=device_index, threads=threads),
            DecoderOptions(
                threads=threads,
                gpu_layers=gpu_layers,
                device_index=device_index,
                gpu_asked=_gpu_asked(device),
            ),
        )
        decoder = replace(decoder, quant=decoder_quant or None, context_tokens=4096)
        self.engine = ForcedAligner(self.info, replace(encoder, precision=None), decoder)

    def align(
        self,
        audio: str | os.PathLike | np.ndarray,
        text: str,
        *,
        language: str | None = None,
        sampling_rate: int = SAMPLE_RATE,
    ) -> list[Word]:
        """Timed pieces of `text` (joining them gives `text` back) for `audio` of at most 180 s."""
        samples = to_mono_16k(audio, sampling_rate) if isinstance(audio, np.ndarray) else load_audio(audio)
        if language:
            language = canonical_language(language, self.info.languages)
        return self.engine.align(samples, text, language)


def installed_script(name: str) -> Path:
    """The absolute path of this installation's console script `name` (`.exe` on Windows).

    The path pip recorded in the distribution's RECORD when there is one (venv, system, `--user` and conda
    installs alike; pip writes scripts to the scheme's scripts folder, which is not beside `python.exe`
    outside a venv), else the scripts folder of the install scheme whose site-packages holds this package
    (editable installs)."""
    exe = name + (".exe" if sys.platform == "win32" else "")
    try:
        dist = metadata.distribution("qwen3asr-plugin")
        for file in dist.files or ():
            if file.name == exe:
                return Path(os.path.normpath(dist.locate_file(file))).absolute()
    except metadata.PackageNotFoundError:
        pass
    here = Path(__file__).resolve()
    user = sysconfig.get_preferred_scheme("user")
    if here.is_relative_to(Path(sysconfig.get_path("purelib", user)).resolve()):
        return Path(sysconfig.get_path("scripts", user)) / exe
    return Path(sysconfig.get_path("scripts")) / exe

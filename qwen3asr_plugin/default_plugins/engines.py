"""Built-in engines: `local` runs the models on this machine; `openai` calls any OpenAI-compatible
speech-to-text endpoint (`qwen3asr serve`, vLLM's Qwen3-ASR server, ...), so the same hosts can point at a
served cluster."""

from __future__ import annotations

import io
import json
import os
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np

from ..engine.audio import SAMPLE_RATE
from ..engine.errors import Qwen3ASRError
from ..engine.languages import NAME_TO_ISO
from ..engine.records import Segment, TranscriptionInfo, Word
from ..hookspecs import hookimpl


def _local(**options):
    """The local engine, loaded on first use (so registering it costs nothing)."""
    from ..api import ASRModel

    return ASRModel(**options)


class OpenAIEngine:
    """Transcription through POST {endpoint}/audio/transcriptions (verbose_json, word and segment times)."""

    def __init__(
        self,
        endpoint: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        timeout_seconds: float = 3600.0,
        **_ignored,
    ):
        """Options meant for other engines (device, aligner, ...) are ignored."""
        from ..engine.model_store import DEFAULT_MODEL

        self.endpoint = (
            endpoint or os.environ.get("QWEN3ASR_ENDPOINT") or "http://127.0.0.1:8000/v1"
        ).rstrip("/")
        self.model = model or DEFAULT_MODEL
        self.api_key = api_key or os.environ.get("QWEN3ASR_API_KEY") or os.environ.get("OPENAI_API_KEY")
        self.timeout_seconds = timeout_seconds

    def _wav_bytes(self, source, audio_track: int) -> bytes:
        from scipy.io import wavfile

        from ..engine.audio import load_audio

        audio = load_audio(source, audio_track)
        buf = io.BytesIO()
        wavfile.write(buf, SAMPLE_RATE, (np.clip(audio, -1, 1) * 32767).astype(np.int16))
        return buf.getvalue()

    def request(self, fields: list[tuple[str, str]], filename: str, data: bytes, content_type: str) -> dict:
        boundary = uuid.uuid4().hex
        body = io.BytesIO()
        for name, value in fields:
            body.write(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
            )
        body.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n".encode()
        )
        body.write(data)
        body.write(f"\r\n--{boundary}--\r\n".encode())
        req = urllib.request.Request(
            f"{self.endpoint}/audio/transcriptions", data=body.getvalue(), method="POST"
        )
        req.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
        if self.api_key:
            req.add_header("Authorization", f"Bearer {self.api_key}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_seconds) as resp:
                return json.loads(resp.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read().decode("utf-8"))["error"]["message"]
            except Exception:
                message = str(exc)
            raise Qwen3ASRError(f"{self.endpoint}: {message}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise Qwen3ASRError(f"{self.endpoint}: unreachable ({exc}); is the server running?") from exc

    def transcribe(
        self,
        source: str,
        *,
        language: str | None = None,
        context: str | None = None,
        audio_track: int = 0,
        vad_filter: bool = False,
        temperature_fallback: bool = True,
        start_seconds: float | None = None,
        batch_size: int | None = None,
        first_batch_size: int | None = None,
        on_progress=None,
    ):
        """The Engine protocol; chunking, VAD, the temperature fallback and batching are the server's to do,
        so those keywords are accepted and left to it."""
        data = self._wav_bytes(source, audio_track)
        fields = [
            ("model", self.model),
            ("response_format", "verbose_json"),
            ("timestamp_granularities[]", "word"),
            ("timestamp_granularities[]", "segment"),
        ]
        if language:
            fields.append(("language", NAME_TO_ISO.get(language, language)))
        if context:
            fields.append(("prompt", context))
        result = self.request(fields, Path(str(source)).stem + ".wav", data, "audio/wav")
        segments = segments_from_verbose_json(result)
        duration = float(result.get("duration") or 0.0)
        if on_progress:
            on_progress(duration)
        info = TranscriptionInfo(language=_language_name(result.get("language")), duration=duration)
        return iter(segments), info


def _language_name(value):
    if not value:
        return None
    from ..engine.languages import ISO_CODES

    return ISO_CODES.get(value.lower(), value[:1].upper() + value[1:].lower())


def pieces_from_words(text: str, words: list[dict]) -> list[Word] | None:
    """Timed pieces of `text` for OpenAI-style words (bare word strings): each piece takes the text up to its
    word's end, so the pieces join to `text`. None when the words cannot be found in order."""
    pieces, cursor = [], 0
    for i, w in enumerate(words):
        token = str(w.get("word", "")).strip()
        found = text.find(token, cursor) if token else -1
        if found < 0:
            return None
        end = found + len(token)
        if i == len(words) - 1:
            end = len(text)
        pieces.append(Word(float(w["start"]), float(w["end"]), text[cursor:end]))
        cursor = end
    return pieces if cursor == len(text) else None


def segments_from_verbose_json(result: dict) -> list[Segment]:
    words = result.get("words") or []
    out = []
    for i, s in enumerate(result.get("segments") or []):
        start, end, text = float(s["start"]), float(s["end"]), str(s.get("text", "")).strip()
        # A segment's own words when the server nests them (ours does; a cue may start before its first word),
        # else OpenAI's top-level words that start inside the segment.
        inside = s.get("words") or [w for w in words if start - 1e-3 <= float(w["start"]) <= end + 1e-3]
        timed = pieces_from_words(text, inside) if inside else None
        out.append(
            Segment(
                id=i,
                start=start,
                end=end,
                text=text,
                language=_language_name(result.get("language")),
                words=tuple(timed) if timed else None,
            )
        )
    return out


@hookimpl(trylast=True)
def register_engines(register):
    register("local", _local, "Qwen3-ASR on this machine (onnxruntime + llama.cpp)")
    register("openai", OpenAIEngine, "an OpenAI-compatible /v1/audio/transcriptions endpoint")

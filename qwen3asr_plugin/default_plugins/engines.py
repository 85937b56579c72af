"""Built-in engines: `local` runs the models on this machine; `openai` calls any OpenAI-compatible
speech-to-text endpoint (`qwen3asr serve`, vLLM's Qwen3-ASR server, ...), so the same hosts can point at a
served cluster."""

from __future__ import annotations

import io
import json
import os
import threading
import urllib.error
import urllib.request
import uuid
from dataclasses import replace

import numpy as np

from ..engine.audio import SAMPLE_RATE
from ..engine.chunking import source_word
from ..engine.errors import Qwen3ASRError
from ..engine.languages import NAME_TO_ISO
from ..engine.records import Segment, TranscriptionInfo, Word
from ..hookspecs import hookimpl


def _local(**options):
    """The local engine, loaded on first use (so registering it costs nothing)."""
    from ..api import ASRModel

    return ASRModel(**options)


class OpenAIEngine:
    """Transcription through POST {endpoint}/audio/transcriptions, chunk by chunk.

    The audio is decoded and cut here with the local engine's chunker (20-30 s at quiet points), so a request
    never meets a server's upload or length limit (vLLM: 25 MB, and one clip per request), and up to `jobs`
    chunks are in flight at once, so a served cluster is kept busy; segments still come out in order. Each
    chunk asks for plain `json` (what every OpenAI-compatible server answers, vLLM's Qwen3-ASR included) with
    the language as an ISO code; `qwen3asr serve` (recognised by its /v1/models listing) is asked for
    `verbose_json` with word times instead. Word times otherwise come from a local `aligner` when one is
    given. Durations come from the decoded samples, never from the server."""

    def __init__(
        self,
        endpoint: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        timeout_seconds: float = 3600.0,
        jobs: int | None = None,
        aligner=None,
        device: str = "auto",
        threads: int = 0,
        **_ignored,
    ):
        """`model`: the served model id (default: the first the server lists at /v1/models). `aligner`: a
        preset or folder of a forced aligner that times the words here (default: none). Options meant for
        other engines are ignored."""
        self.endpoint = (
            endpoint or os.environ.get("QWEN3ASR_ENDPOINT") or "http://127.0.0.1:8000/v1"
        ).rstrip("/")
        self.model = model
        self.api_key = api_key or os.environ.get("QWEN3ASR_API_KEY") or os.environ.get("OPENAI_API_KEY")
        self.timeout_seconds = timeout_seconds
        self.jobs = max(1, int(jobs or 4))
        # At most `jobs` requests in flight in all, whatever the number of inputs transcribed at once
        # (`parallel_inputs`: the batch runs that many together, so many short files keep a cluster busy too).
        self.slots = threading.BoundedSemaphore(self.jobs)
        self.parallel_inputs = self.jobs
        self.aligner_name = aligner if isinstance(aligner, str | os.PathLike) and aligner else None
        self.aligner_options = {"device": device, "threads": threads}
        self._aligner = None
        self._aligner_lock = threading.Lock()  # one llama.cpp context: one alignment at a time
        self._served: tuple[str, bool] | None = None

    def _headers(self, req: urllib.request.Request) -> None:
        if self.api_key:
            req.add_header("Authorization", f"Bearer {self.api_key}")

    def served(self) -> tuple[str, bool]:
        """The model id to send, and whether the server is `qwen3asr serve` (asked once)."""
        if self._served is None:
            listed, ours, answered = [], False, False
            req = urllib.request.Request(f"{self.endpoint}/models")
            self._headers(req)
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:
                    listed = json.loads(resp.read().decode("utf-8")).get("data") or []
                ours = any(m.get("owned_by") == "qwen3asr-plugin" for m in listed)
                answered = True
            except urllib.error.HTTPError:
                answered = True  # a server without the listing: the given or default name
            except (urllib.error.URLError, OSError, ValueError, AttributeError):
                pass  # not now: ask again with the next request
            from ..engine.model_store import DEFAULT_MODEL

            model = self.model or (listed[0].get("id") if listed else None) or DEFAULT_MODEL
            if not answered:
                return model, ours
            self._served = (model, ours)
        return self._served

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
        self._headers(req)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_seconds) as resp:
                return json.loads(resp.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            raise Qwen3ASRError(f"{self.endpoint}: {_error_message(exc)}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise Qwen3ASRError(f"{self.endpoint}: unreachable ({exc}); is the server running?") from exc

    def _align(self, audio: np.ndarray, text: str, language: str | None) -> tuple[Word, ...] | None:
        if not self.aligner_name or not text:
            return None
        with self._aligner_lock:  # the chunks' threads share it
            if self._aligner is None:
                from ..api import Aligner

                self._aligner = Aligner(self.aligner_name, **self.aligner_options)
            return tuple(self._aligner.align(audio, text, language=language))

    def _chunk(self, chunk, language: str | None, context: str | None) -> list[Segment]:
        """One chunk's request, its segments in the input's time."""
        from scipy.io import wavfile

        model, ours = self.served()
        audio = chunk.audio[: chunk.n_samples]
        buf = io.BytesIO()
        wavfile.write(buf, SAMPLE_RATE, (np.clip(audio, -1, 1) * 32767).astype(np.int16))
        fields = [("model", model)]
        if ours:
            fields += [("response_format", "verbose_json"), ("timestamp_granularities[]", "word")]
            fields += [("timestamp_granularities[]", "segment")]
            fields += [("vad", "false")]  # this side's VAD (or its --no-vad) already chose the audio
        else:
            fields += [("response_format", "json")]
        if language:
            fields.append(("language", NAME_TO_ISO.get(language, language)))
        if context:
            fields.append(("prompt", context))
        with self.slots:
            result = self.request(fields, f"chunk-{chunk.start_sample}.wav", buf.getvalue(), "audio/wav")
        # times inside the chunk's audio, mapped to the input's (across what VAD left out of the chunk)
        if ours:
            return [
                Segment(
                    s.id,
                    round(chunk.source_seconds(s.start), 3),
                    round(chunk.source_seconds(s.end, end=True), 3),
                    s.text,
                    s.language or language,
                    words=tuple(source_word(chunk, w) for w in s.words) if s.words else None,
                )
                for s in segments_from_verbose_json(result)
            ]
        text = str(result.get("text") or "").strip()
        if not text:
            return []  # nothing said in this chunk
        said = _language_name(result.get("language")) or language
        words = self._align(audio, text, said)
        return [
            Segment(
                0,
                chunk.start_seconds,
                chunk.end_seconds,
                text,
                said,
                words=tuple(source_word(chunk, w) for w in words) if words else None,
            )
        ]

    def transcribe(
        self,
        source: str,
        *,
        language: str | None = None,
        context: str | None = None,
        audio_track: int = 0,
        vad_filter: bool = True,
        vad_parameters=None,
        temperature_fallback: bool = True,
        start_seconds: float | None = None,
        batch_size: int | None = None,
        first_batch_size: int | None = None,
        on_progress=None,
        end_seconds: float | None = None,
    ):
        """The Engine protocol (and `end_seconds`, one window); the temperature fallback and batching are the
        server's to do, so those keywords are accepted and left to it."""
        from concurrent.futures import ThreadPoolExecutor

        from ..engine.audio import iter_audio
        from ..engine.chunking import ChunkOptions, iter_chunks
        from ..engine.media import probe
        from ..engine.vad import vad_options

        duration = probe(source).duration
        start = max(0.0, start_seconds or 0.0)
        if end_seconds is not None:
            windows = [(start, end_seconds)]
        elif start and duration and start < duration - 1:
            windows = [(start, None), (0.0, start)]
        else:
            windows = [(0.0, None)]
        info = TranscriptionInfo(language=language, duration=duration or 0.0)

        read = [0]  # samples decoded: the input's length once all is read (whatever VAD skips)

        def counted(blocks):
            for block in blocks:
                read[0] += block.size
                yield block

        chunking = ChunkOptions(
            vad=vad_options(vad_parameters) if vad_filter else None,
            join_regions=self.aligner_name is not None,  # words need their own times across the joins
        )

        def chunks():
            """(chunk, seconds done once it is): the windows in order, what VAD skips counted as done."""
            before = 0.0  # the lengths of the windows already done
            for a, b in windows:
                blocks = counted(
                    iter_audio(source, audio_track, start_seconds=a or None, duration_seconds=b and b - a)
                )
                for chunk in iter_chunks(blocks, chunking, first_sample=int(round(a * SAMPLE_RATE))):
                    yield chunk, before + chunk.end_seconds - a
                before += (b if b is not None else duration or 0.0) - a

        def segments():
            count = 0
            pool = ThreadPoolExecutor(self.jobs)
            try:
                pending = []
                stream = chunks()
                while True:
                    for chunk, at in stream:
                        pending.append((at, pool.submit(self._chunk, chunk, language, context)))
                        if len(pending) >= self.jobs:
                            break
                    if not pending:
                        break
                    at, future = pending.pop(0)
                    found = future.result()
                    if on_progress is not None:
                        on_progress(at + start if end_seconds is not None else at)
                    for segment in found:
                        if segment.language and segment.language not in info.languages:
                            info.languages.append(segment.language)
                        info.language = info.language or segment.language
                        yield replace(segment, id=count)
                        count += 1
            finally:  # stopped, failed or closed early: do not wait for the requests still out
                pool.shutdown(wait=False, cancel_futures=True)
            if end_seconds is None:
                info.duration = read[0] / SAMPLE_RATE  # a VAD-skipped quiet end makes no chunk, but was read

        return segments(), info


def _error_message(exc: urllib.error.HTTPError) -> str:
    """The server's message: OpenAI's {"error": {"message"}} or vLLM's {"message"} (ErrorResponse)."""
    try:
        body = json.loads(exc.read().decode("utf-8"))
        error = body.get("error", body)
        return str(error.get("message") if isinstance(error, dict) else error)
    except Exception:
        return f"HTTP {exc.code} {exc.reason}"


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

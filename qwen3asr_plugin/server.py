"""`qwen3asr serve`: an OpenAI-compatible speech-to-text server (POST /v1/audio/transcriptions, GET /v1/models).

One model is loaded once and shared; requests run one at a time in a worker thread, up to `max_queue` wait
their turn and more are refused with 503, so memory stays bounded under load. Uploads are size-limited.
Errors use OpenAI's JSON shape: {"error": {"message", "type", "param", "code"}}. Loopback by default; an
optional API key is checked as a Bearer token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from .engine.cues import build_cues
from .engine.errors import AudioError, Qwen3ASRError
from .engine.languages import canonical_language
from .engine.writers import Transcript, render

FORMATS = ("json", "text", "srt", "vtt", "verbose_json")


def error(
    status: int,
    message: str,
    type_: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": type_, "param": param, "code": code}}, status)


class TranscriptionServer:
    def __init__(
        self,
        model,
        model_id: str,
        api_key: str | None = None,
        max_upload_bytes: int = 512 << 20,
        max_queue: int = 8,
    ):
        self.model = model
        self.model_id = model_id
        self.api_key = api_key
        self.max_upload_bytes = max_upload_bytes
        self.max_queue = max_queue
        self.waiting = 0
        self.lock = asyncio.Lock()
        self.app = Starlette(
            routes=[
                Route("/v1/models", self.models, methods=["GET"]),
                Route("/v1/audio/transcriptions", self.transcriptions, methods=["POST"]),
                Route("/health", self.health, methods=["GET"]),
            ]
        )

    def _unauthorized(self, request: Request) -> Response | None:
        if self.api_key and request.headers.get("authorization", "") != f"Bearer {self.api_key}":
            return error(401, "invalid or missing API key", "authentication_error", code="invalid_api_key")
        return None

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "model": self.model_id, "queued": self.waiting})

    async def models(self, request: Request) -> Response:
        if (denied := self._unauthorized(request)) is not None:
            return denied
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {"id": self.model_id, "object": "model", "created": 0, "owned_by": "qwen3asr-plugin"}
                ],
            }
        )

    async def transcriptions(self, request: Request) -> Response:
        if (denied := self._unauthorized(request)) is not None:
            return denied
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > self.max_upload_bytes + (1 << 20):
            # Read and drop (a bounded amount of) the body first, so that clients which only read the answer
            # once their upload is sent see the 413 instead of a broken connection.
            drained, cap = 0, max(64 << 20, 4 * self.max_upload_bytes)
            async for chunk in request.stream():
                drained += len(chunk)
                if drained > cap:
                    break
            return error(413, f"upload larger than {self.max_upload_bytes >> 20} MB", code="file_too_large")
        try:
            form = await request.form(max_files=1, max_fields=64)
        except Exception as exc:  # malformed multipart bodies raise parser-specific errors
            return error(400, f"could not read the multipart form ({exc})")
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            return error(400, "missing the `file` field (the audio to transcribe)", param="file")
        fmt = str(form.get("response_format") or "json")
        if fmt not in FORMATS:
            return error(400, f"response_format must be one of {', '.join(FORMATS)}", param="response_format")
        language = form.get("language") or None
        if language:
            try:
                language = canonical_language(str(language), self.model.info.languages)
            except Qwen3ASRError as exc:
                return error(400, str(exc), param="language")
        granularities = {str(g) for g in form.getlist("timestamp_granularities[]")}
        prompt = str(form.get("prompt") or "") or None
        stream = str(form.get("stream") or "false").lower() == "true"
        suffix = Path(upload.filename or "audio").suffix[:10]
        fd, tmp = tempfile.mkstemp(prefix="qwen3asr-upload-", suffix=suffix)
        try:
            with os.fdopen(fd, "wb") as out:
                await run_in_threadpool(shutil.copyfileobj, upload.file, out)
            size = os.path.getsize(tmp)
            if size > self.max_upload_bytes:
                return error(
                    413, f"upload larger than {self.max_upload_bytes >> 20} MB", code="file_too_large"
                )
            if size == 0:
                return error(400, "the uploaded file is empty", param="file")
            if self.waiting >= self.max_queue:
                return error(
                    503,
                    "server busy: too many requests waiting; retry later",
                    "server_error",
                    code="server_busy",
                )
            if stream:
                return StreamingResponse(self._stream(tmp, language, prompt), media_type="text/event-stream")
            async with self.turn():
                segments, info = await run_in_threadpool(self._run, tmp, language, prompt)
        except (AudioError, Qwen3ASRError) as exc:
            return error(400, str(exc).replace(tmp, upload.filename or "upload"), param="file")
        finally:
            if not stream:
                Path(tmp).unlink(missing_ok=True)
        return self._respond(fmt, segments, info, granularities)

    @contextlib.asynccontextmanager
    async def turn(self):
        """Wait for the model (counted as queued while waiting), then hold it."""
        self.waiting += 1
        queued = True
        try:
            async with self.lock:
                self.waiting -= 1
                queued = False
                yield
        finally:
            if queued:
                self.waiting -= 1

    def _run(self, path: str, language: str | None, prompt: str | None):
        segments_iter, info = self.model.transcribe(path, language=language, context=prompt)
        return list(segments_iter), info

    async def _stream(self, path: str, language: str | None, prompt: str | None):
        """Server-sent events: transcript.text.delta per segment, then transcript.text.done."""
        try:
            async with self.turn():
                segments_iter, _ = await run_in_threadpool(
                    self.model.transcribe, path, language=language, context=prompt
                )
                texts, segments = [], []
                try:
                    async for segment in iterate_in_threadpool(segments_iter):
                        delta = (" " if texts and _spaced(segment.text) else "") + segment.text
                        texts.append(delta)
                        segments.append(_segment_json(segment))
                        yield _sse("transcript.text.delta", {"type": "transcript.text.delta", "delta": delta})
                        yield _sse(
                            "transcript.segment", {"type": "transcript.segment", "segment": segments[-1]}
                        )
                except Qwen3ASRError as exc:
                    yield _sse("error", {"type": "error", "error": {"message": str(exc)}})
                    return
                done = {"type": "transcript.text.done", "text": "".join(texts), "segments": segments}
                yield _sse("transcript.text.done", done)
        finally:
            Path(path).unlink(missing_ok=True)

    def _respond(self, fmt: str, segments, info, granularities: set[str]) -> Response:
        text = _join(segments)
        if fmt == "json" and not granularities:
            return JSONResponse({"text": text})
        if fmt == "text":
            return PlainTextResponse(text)
        if fmt in ("srt", "vtt"):
            from .batch import words_of

            cues = build_cues(words_of(segments), duration=info.duration)
            body = render(
                fmt, Transcript(segments=segments, cues=cues, language=info.language, duration=info.duration)
            )
            return PlainTextResponse(body, media_type="text/vtt" if fmt == "vtt" else "application/x-subrip")
        language = info.language
        data = {
            "task": "transcribe",
            "language": (language or "").lower(),
            "duration": round(info.duration, 3),
            "text": text,
        }
        # verbose_json (and json when timestamps are asked for, as Subtitle Edit does): segments, with their
        # words nested as Subtitle Edit reads them, and the top-level words list OpenAI's API has.
        words = "word" in granularities
        data["segments"] = [_segment_json(s, words) for s in segments]
        if words:
            data["words"] = [w for s in data["segments"] for w in s["words"]]
        return JSONResponse(data)


def _sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _segment_json(s, words: bool = True) -> dict:
    d = {
        "id": s.id,
        "seek": 0,
        "start": s.start,
        "end": s.end,
        "text": s.text,
        "tokens": list(s.tokens),
        "temperature": s.temperature,
        "avg_logprob": 0.0,
        "compression_ratio": 0.0,
        "no_speech_prob": 0.0,
    }
    if words:
        d["words"] = [
            {"word": w.word.strip(), "start": w.start, "end": w.end, "probability": 1.0}
            for w in (s.words or ())
            if w.word.strip()
        ]
    return d


def _spaced(text: str) -> bool:
    return bool(text) and not ("\u3000" <= text[0] <= "\u9fff")


def _join(segments) -> str:
    out = ""
    for s in segments:
        out += ((" " if out and _spaced(s.text) else "") + s.text) if out else s.text
    return out


def serve(model, model_id: str, host: str = "127.0.0.1", port: int = 8000, **options) -> None:
    import uvicorn

    server = TranscriptionServer(model, model_id, **options)
    uvicorn.run(server.app, host=host, port=port, log_level="warning")

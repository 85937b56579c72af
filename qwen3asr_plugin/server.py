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
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from .api import render_subtitles
from .engine.errors import Qwen3ASRError
from .engine.languages import canonical_language
from .engine.records import Cue, Transcript, join_texts, separator
from .runner import Cancelled, RunOptions, Transcription

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
        run_options: RunOptions = RunOptions(),
    ):
        """`model` is any Engine; `run_options` are the server's cue rules and post-processing, to which each
        request adds its language and prompt."""
        self.model = model
        self.run_options = run_options
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
                Route("/", self.health, methods=["GET", "HEAD"]),  # Subtitle Edit probes the root first
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
                # The model's own language names where the engine has a model here; any ISO code otherwise.
                supported = getattr(getattr(self.model, "info", None), "languages", ())
                language = canonical_language(str(language), supported)
            except Qwen3ASRError as exc:
                return error(400, str(exc), param="language")
        granularities = {str(g) for g in form.getlist("timestamp_granularities[]")}
        prompt = str(form.get("prompt") or "") or None
        stream = str(form.get("stream") or "false").lower() == "true"
        # `vad` (ours): true or false overrides the server's --vad/--no-vad for this request (a qwen3asr client
        # sends false: its chunks are what its own VAD, or its --no-vad, left)
        vad = str(form.get("vad") or "").lower()
        if vad not in ("", "true", "false"):
            return error(400, "vad must be true or false", param="vad")
        suffix = Path(upload.filename or "audio").suffix[:10]
        fd, tmp = tempfile.mkstemp(prefix="qwen3asr-upload-", suffix=suffix)
        streaming = False  # the upload then belongs to the stream, which removes it
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
            options = replace(self.run_options, language=language, context=prompt)
            if vad:
                options = replace(options, vad_filter=vad == "true")
            name = upload.filename or "upload"
            if stream:
                streaming = True
                return StreamingResponse(
                    self._stream(request, tmp, name, options),
                    media_type="text/event-stream",
                    # also when the stream never starts (the client left first)
                    background=BackgroundTask(Path(tmp).unlink, missing_ok=True),
                )
            async with ClientWatch(request) as client, self.turn(client) as ours:
                if not ours:
                    return Response(status_code=499)  # nobody is waiting for the answer
                run = Transcription(self.model, tmp, options, should_stop=client.gone.is_set)
                try:
                    transcript = await run_in_threadpool(run.finish)
                except Cancelled:
                    client.report(name)
                    return Response(status_code=499)
        except Qwen3ASRError as exc:
            return error(400, str(exc).replace(tmp, name), param="file")
        finally:
            if not streaming:
                Path(tmp).unlink(missing_ok=True)
        return self._respond(fmt, transcript, granularities)

    @contextlib.asynccontextmanager
    async def turn(self, client: ClientWatch | None = None):
        """Wait for the model (counted as queued while waiting), then hold it. Yields False, without the model,
        when the client leaves while waiting: the queue moves on without it."""
        self.waiting += 1
        acquire = asyncio.ensure_future(self.lock.acquire())
        waits = {acquire} if client is None else {acquire, asyncio.ensure_future(client.left.wait())}
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # cancelled while waiting: give the lock back if it was just granted
            acquire.cancel()
            if acquire.done() and not acquire.cancelled():
                self.lock.release()
            raise
        finally:
            self.waiting -= 1
            for task in waits - {acquire}:
                task.cancel()
        if not acquire.done():
            acquire.cancel()  # asyncio.Lock hands a lock granted to a cancelled waiter to the next one
        held = acquire.done() and not acquire.cancelled()
        try:
            yield held
        finally:
            if held:
                self.lock.release()

    async def _stream(self, request: Request, tmp: str, name: str, options: RunOptions):
        """Server-sent events, as OpenAI's streamed transcription sends them: transcript.text.delta per segment
        as it is recognised, then transcript.text.done with the text and the cues as `segments`. A client
        that leaves stops the run.

        No transcript.segment events: Subtitle Edit 5 adds a paragraph for each through a Progress callback
        that it does not wait for, and adds the done event's segments when none has arrived yet
        (SpeechToTextViewModel.IngestTranscriptionResponse), so the same cues could be added twice."""
        try:
            async with ClientWatch(request) as client, self.turn(client) as ours:
                if not ours:
                    return
                run = Transcription(self.model, tmp, options, should_stop=client.gone.is_set)
                started = False
                try:
                    async for segment in iterate_in_threadpool(iter(run)):
                        delta = (separator(segment.text) if started else "") + segment.text
                        started = started or bool(segment.text)
                        yield _sse("transcript.text.delta", {"type": "transcript.text.delta", "delta": delta})
                    transcript = await run_in_threadpool(run.finish)
                except Cancelled:
                    client.report(name)
                    return
                except Qwen3ASRError as exc:
                    yield _sse("error", {"type": "error", "error": {"message": str(exc).replace(tmp, name)}})
                    return
                segments = [_cue_json(i, c) for i, c in enumerate(transcript.cues)]
                done = {"type": "transcript.text.done", "text": transcript.text, "segments": segments}
                yield _sse("transcript.text.done", done)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def _respond(self, fmt: str, transcript: Transcript, granularities: set[str]) -> Response:
        if fmt == "json" and not granularities:
            return JSONResponse({"text": transcript.text})
        if fmt == "text":
            return PlainTextResponse(transcript.text)
        if fmt in ("srt", "vtt"):
            body = render_subtitles(transcript, fmt)
            return PlainTextResponse(body, media_type="text/vtt" if fmt == "vtt" else "application/x-subrip")
        data = {
            "task": "transcribe",
            "language": (transcript.language or "").lower(),
            "duration": round(transcript.duration, 3),
            "text": transcript.text,
        }
        # verbose_json (and json when timestamps are asked for, as Subtitle Edit does): the subtitle cues as
        # segments (a client such as Subtitle Edit makes one subtitle of each), their words nested, and the
        # top-level words list OpenAI's API has.
        data["segments"] = [_cue_json(i, c) for i, c in enumerate(transcript.cues)]
        if "word" in granularities:
            data["words"] = [w for s in data["segments"] for w in s["words"]]
        return JSONResponse(data)


class ClientWatch:
    """Whether the client is still there, checked every `every` seconds while its request waits or runs.

    A run stops between chunks once its client has gone (`gone`, read by the worker thread), and a request
    that leaves while queued gives up its turn (`left`). Subtitle Edit abandons a request at its timeout
    (300 s by default) and may retry: without this the retry would wait behind the abandoned run."""

    def __init__(self, request: Request, every: float = 0.2):
        self.request, self.every = request, every
        self.gone = threading.Event()
        self.left = asyncio.Event()
        self.since = time.monotonic()

    async def __aenter__(self) -> ClientWatch:
        self.task = asyncio.ensure_future(self._watch())
        return self

    async def __aexit__(self, *exc) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    async def _watch(self) -> None:
        while not await self.request.is_disconnected():
            await asyncio.sleep(self.every)
        self.gone.set()
        self.left.set()

    def report(self, name: str) -> None:
        print(
            f"qwen3asr: {name}: the client left after {time.monotonic() - self.since:.0f} s; stopped",
            file=sys.stderr,
            flush=True,
        )


def _sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _cue_json(index: int, cue: Cue) -> dict:
    """A cue as an OpenAI verbose_json segment (fields a Whisper server fills; ours are neutral)."""
    return {
        "id": index,
        "seek": 0,
        "start": cue.start,
        "end": cue.end,
        "text": join_texts(cue.lines),
        "language": (cue.language or "").lower(),
        "tokens": [],
        "temperature": 0.0,
        "avg_logprob": 0.0,
        "compression_ratio": 0.0,
        "no_speech_prob": 0.0,
        "words": [
            {"word": w.word.strip(), "start": w.start, "end": w.end, "probability": 1.0}
            for w in cue.words
            if w.word.strip()
        ],
    }


def serve(model, model_id: str, host: str = "127.0.0.1", port: int = 8000, **options) -> None:
    import uvicorn

    server = TranscriptionServer(model, model_id, **options)
    uvicorn.run(server.app, host=host, port=port, log_level="warning")

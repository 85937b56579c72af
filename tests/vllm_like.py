"""A server that answers `/v1/audio/transcriptions` and `/v1/models` as vLLM serving Qwen3-ASR does, with our
local engine doing the recognition, and that logs how many requests are in flight.

Read from vLLM 0.34.0 (the PyPI source release, commit 62d4bc3c7), `vllm/entrypoints/`:
- errors are always `{"error": {"message", "type", "param", "code"}}` (serve/engine/protocol.py ErrorResponse);
- a `model` that is not a served name: 404 "The model `X` does not exist." (serve/engine/serving.py);
- `srt`/`vtt`: 400 "Currently only support response_format: ..."; `verbose_json` for a model without segment
  timestamps (Qwen3-ASR): 400 "Currently do not support verbose_json for ..." (speech_to_text/base/serving.py);
- `language` must be a lower-case ISO 639-1 code (interfaces.py SupportsTranscription.validate_language);
- uploads over VLLM_MAX_AUDIO_CLIP_FILESIZE_MB (25) and audio over VLLM_MAX_AUDIO_DECODE_DURATION_S (600)
  get 400; undecodable audio 400 "Invalid or corrupted audio data. ...";
- audio over 30 s (Qwen3-ASR's max_audio_clip_s) is split into 30 s pieces whose texts are joined with " "
  (with "" for ja and zh); `json` and `text` both answer `{"text", "usage": {"type": "duration", "seconds"}}`:
  no language, no duration, no segments, no words (speech_to_text/transcription/protocol.py);
- GET /v1/models lists ModelCards with `owned_by: "vllm"`.
"""

from __future__ import annotations

import math
import tempfile
import threading
import time
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from qwen3asr_plugin.engine.audio import SAMPLE_RATE, load_audio
from qwen3asr_plugin.engine.errors import Qwen3ASRError
from qwen3asr_plugin.engine.languages import ISO_CODES
from tests.server_process import free_port

MAX_MB, MAX_SECONDS, CLIP_SECONDS = 25, 600, 30.0
ISO639_1 = ["af", "ar", "hy", "az", "be", "bs", "bg", "ca", "zh", "hr", "cs", "da", "nl", "en", "et", "fi", "fr", "gl", "de", "el", "he", "hi", "hu", "is", "id", "it", "ja", "kn", "kk", "ko", "lv", "lt", "mk", "ms", "mr", "mi", "ne", "no", "fa", "pl", "pt", "ro", "ru", "sr", "sk", "sl", "es", "sw", "sv", "tl", "ta", "th", "tr", "uk", "ur", "vi", "cy"]  # fmt: skip


def error(status: int, message: str, kind: str = "BadRequestError", param: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": status}}, status)


class VllmLike:
    def __init__(self, model, served_name: str = "Qwen/Qwen3-ASR-0.6B"):
        self.model, self.served_name = model, served_name
        self.lock = threading.Lock()  # one recognition at a time; requests wait (and count as in flight)
        self.in_flight = 0
        self.most_in_flight = 0
        self.log: list[dict] = []
        self.app = Starlette(
            routes=[
                Route("/v1/models", self.models, methods=["GET"]),
                Route("/v1/audio/transcriptions", self.transcriptions, methods=["POST"]),
            ]
        )

    async def models(self, request: Request):
        card = {"id": self.served_name, "object": "model", "created": 0, "owned_by": "vllm",
                "root": "/models/Qwen3-ASR", "parent": None, "max_model_len": 65536, "permission": []}  # fmt: skip
        return JSONResponse({"object": "list", "data": [card]})

    async def transcriptions(self, request: Request):
        from starlette.concurrency import run_in_threadpool

        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            form = await request.form()
            fields = {k: v for k, v in form.multi_items() if k != "file"}
            self.log.append(fields)
            model = fields.get("model") or self.served_name
            if model != self.served_name:
                return error(404, f"The model `{model}` does not exist. Valid aliases: {self.served_name}.",
                             "NotFoundError", "model")  # fmt: skip
            fmt = fields.get("response_format", "json")
            if fmt in ("srt", "vtt"):
                return error(400, "Currently only support response_format: `text`, `json`, `verbose_json` or "
                             "`diarized_json`")  # fmt: skip
            if fmt == "verbose_json":
                return error(400, f"Currently do not support verbose_json for {model}")
            language = fields.get("language")
            if language is not None and language not in ISO639_1:
                return error(400, f"Unsupported language: {language!r}.  Must be one of {ISO639_1}.")
            data = await form["file"].read()
            if len(data) > MAX_MB * 1024 * 1024:
                return error(400, f"Maximum file size exceeded (parameter=audio_filesize_mb, value={len(data) / 2**20:.2f})",
                             param="audio_filesize_mb")  # fmt: skip
            return await run_in_threadpool(self._recognise, data, language, fields.get("prompt") or None)
        finally:
            self.in_flight -= 1

    def _recognise(self, data: bytes, language: str | None, prompt: str | None):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "upload"
            path.write_bytes(data)
            try:
                audio = load_audio(path)
            except Qwen3ASRError:
                return error(400, "Invalid or corrupted audio data. Ensure the input is a valid audio or video "
                             "file (e.g. a complete WAV, MP3, or MP4).")  # fmt: skip
            seconds = audio.size / SAMPLE_RATE
            if seconds > MAX_SECONDS:
                return error(400, f"Audio exceeds maximum allowed duration of {MAX_SECONDS}s (metadata reports "
                             f"{seconds:.1f}s). Set VLLM_MAX_AUDIO_DECODE_DURATION_S to increase this limit.")  # fmt: skip
            texts = []
            clip = int(CLIP_SECONDS * SAMPLE_RATE)
            with self.lock:
                for at in range(
                    0, audio.size, clip
                ):  # vLLM cuts near the clip length; pieces here are <= 30 s
                    segments, _ = self.model.transcribe(
                        audio[at : at + clip],
                        language=ISO_CODES.get(language) if language else None,
                        context=prompt,
                        vad_filter=False,  # vLLM hears every clip whole
                    )
                    texts.extend(s.text for s in segments)
            joiner = "" if language in ("ja", "zh") else " "
            return JSONResponse(
                {"text": joiner.join(texts), "usage": {"type": "duration", "seconds": math.ceil(seconds)}}
            )


class VllmLikeServer:
    """`with VllmLikeServer(model) as s:` serves at `s.url` (`s.api` is the VllmLike with its log)."""

    def __init__(self, model, served_name: str = "Qwen/Qwen3-ASR-0.6B"):
        self.api = VllmLike(model, served_name)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(self.api.app, host="127.0.0.1", port=self.port, log_level="warning")
        )

    def __enter__(self):
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)

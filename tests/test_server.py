"""`qwen3asr serve` with real HTTP requests shaped like Subtitle Edit's OpenAI-compatible engine."""

from __future__ import annotations

import io
import json
import threading
import urllib.error
import urllib.request

import numpy as np
import pysubs2
import pytest
from scipy.io import wavfile

from qwen3asr_plugin.default_plugins.engines import OpenAIEngine
from qwen3asr_plugin.engine.errors import Qwen3ASRError
from tests.parity import speech_like
from tests.server_process import ServerProcess


def wav_bytes(seconds: float, seed: int = 3) -> bytes:
    buf = io.BytesIO()
    wavfile.write(buf, 16_000, (speech_like(int(16_000 * seconds), seed=seed) * 32767).astype(np.int16))
    return buf.getvalue()


SE_FIELDS = [
    ("model", "whisper-1"),
    ("response_format", "verbose_json"),
    ("timestamp_granularities[]", "segment"),
    ("timestamp_granularities[]", "word"),
]


@pytest.fixture(scope="module")
def server(models):
    with ServerProcess(
        "--no-vad",
        "--model",
        str(models("tiny")),
        "--aligner",
        str(models("aligner-tiny")),
        "--max-upload-mb",
        "2",
        "--max-queue",
        "8",
    ) as s:
        yield s


def post(server, fields, data=b"", filename="audio.wav", content_type="audio/wav", api_key=None):
    engine = OpenAIEngine(endpoint=f"{server.url}/v1", api_key=api_key)
    return engine.request(fields, filename, data, content_type)


def raw_post(server, body: bytes, content_type: str):
    req = urllib.request.Request(f"{server.url}/v1/audio/transcriptions", data=body, method="POST")
    req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_models_endpoint(server, models):
    with urllib.request.urlopen(f"{server.url}/v1/models") as r:
        data = json.loads(r.read())
    assert data["object"] == "list" and data["data"][0]["object"] == "model"


def test_verbose_json_as_subtitle_edit_asks(server):
    result = post(server, SE_FIELDS, wav_bytes(6.0))
    assert result["task"] == "transcribe"
    assert result["duration"] == pytest.approx(6.0, abs=0.01)
    assert result["segments"] and result["words"]
    for s in result["segments"]:
        assert {"id", "start", "end", "text"} <= set(s) and s["end"] >= s["start"]
    for w in result["words"]:
        assert w["word"] == w["word"].strip() and w["end"] >= w["start"]
    assert result["text"]


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_srt_and_vtt_bodies(server, fmt):
    import uuid

    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nqwen3\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="response_format"\r\n\r\n{fmt}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
            f"Content-Type: audio/wav\r\n\r\n"
        ).encode()
        + wav_bytes(4.0)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    status, data = raw_post(server, body, f"multipart/form-data; boundary={boundary}")
    assert status == 200
    subs = pysubs2.SSAFile.from_string(data.decode("utf-8"), format_=fmt)
    assert len(subs) >= 1 and all(e.end > e.start for e in subs)
    if fmt == "vtt":
        assert data.startswith(b"WEBVTT")


def test_json_text_and_language(server):
    result = post(server, [("model", "m"), ("language", "en"), ("response_format", "json")], wav_bytes(3.0))
    assert set(result) == {"text"}
    with pytest.raises(Qwen3ASRError, match="unknown language"):
        post(server, [("model", "m"), ("language", "tlh")], wav_bytes(1.0))


def test_concurrent_requests_all_answered(server):
    results, errors = [], []

    def one(i):
        try:
            results.append(post(server, SE_FIELDS, wav_bytes(3.0, seed=i)))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 6
    assert all(r["segments"] for r in results)


@pytest.mark.parametrize(
    ("data", "filename", "status", "fragment"),
    [
        (b"this is not audio at all", "notes.wav", 400, "notes.wav"),
        (b"", "empty.wav", 400, "empty"),
        (b"\0" * (3 << 20), "big.wav", 413, "larger than 2 MB"),
    ],
)
def test_bad_uploads_get_json_errors_and_the_server_keeps_serving(server, data, filename, status, fragment):
    import uuid

    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nm\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            "Content-Type: audio/wav\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    code, payload = raw_post(server, body, f"multipart/form-data; boundary={boundary}")
    assert code == status
    err = json.loads(payload)["error"]
    assert fragment in err["message"] and {"type", "param", "code"} <= set(err)
    assert post(server, SE_FIELDS, wav_bytes(2.0))["segments"]  # still serving


def test_missing_file_and_malformed_body(server):
    code, payload = raw_post(server, b"garbage", "multipart/form-data; boundary=xyz")
    assert code == 400 and "error" in json.loads(payload)
    code, payload = raw_post(server, b"model=m", "application/x-www-form-urlencoded")
    assert code == 400 and json.loads(payload)["error"]["param"] == "file"


def test_api_key(models):
    with ServerProcess("--no-vad", "--model", str(models("tiny")), "--no-align", "--api-key", "s3cret") as s:
        with pytest.raises(Qwen3ASRError, match="API key"):
            post(s, SE_FIELDS, wav_bytes(1.0))
        assert post(s, SE_FIELDS, wav_bytes(1.0), api_key="s3cret")["segments"]


def test_streaming_events(server):
    import uuid

    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="stream"\r\n\r\ntrue\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
            "Content-Type: audio/wav\r\n\r\n"
        ).encode()
        + wav_bytes(3.0)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    code, payload = raw_post(server, body, f"multipart/form-data; boundary={boundary}")
    assert code == 200
    events = [json.loads(line[6:]) for line in payload.decode().splitlines() if line.startswith("data: ")]
    assert events[-1]["type"] == "transcript.text.done"
    deltas = [e["delta"] for e in events if e["type"] == "transcript.text.delta"]
    assert deltas and "".join(deltas) == events[-1]["text"]
    assert events[-1]["segments"] and not [e for e in events if e["type"] == "transcript.segment"]


def test_load_eight_clients_bounded_memory(models):
    """8 clients at once for a bounded time, good and bad requests mixed: every request gets a result or a
    JSON error, and the server's memory, sampled throughout, never rises more than 150 MB."""
    import time

    def rss_mb(pid: int) -> float:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    with ServerProcess(
        "--no-vad", "--model", str(models("tiny")), "--no-align", "--max-upload-mb", "1", "--max-queue", "16"
    ) as s:
        post(s, SE_FIELDS, wav_bytes(2.0))
        baseline = rss_mb(s.proc.pid)
        outcomes: list[str] = []
        deadline = time.monotonic() + 60

        def client(i):
            for n in range(4):
                if time.monotonic() > deadline:
                    outcomes.append("late")
                    continue
                try:
                    if (i + n) % 4 == 0:
                        post(s, SE_FIELDS, b"garbage", filename="bad.wav")
                    else:
                        post(s, SE_FIELDS, wav_bytes(2.0, seed=i * 10 + n))
                    outcomes.append("ok")
                except Qwen3ASRError as exc:
                    outcomes.append("error" if "not a media file" in str(exc) else f"unexpected: {exc}")

        samples: list[float] = []
        done = threading.Event()

        def sample() -> None:  # the peak, not only the end: every 20 ms while the clients run
            while not done.is_set():
                samples.append(rss_mb(s.proc.pid))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        done.set()
        sampler.join()
        assert len(outcomes) == 32 and set(outcomes) <= {"ok", "error"}, outcomes
        assert outcomes.count("error") == 8
        assert len(samples) > 20 and max(samples) < baseline + 150, (baseline, max(samples))
        assert rss_mb(s.proc.pid) < baseline + 150
        assert post(s, SE_FIELDS, wav_bytes(1.0))["segments"]


def test_a_full_queue_answers_503_and_the_queue_goes_on(models):
    """With --max-queue 1: one request running and one waiting, the next gets 503 with OpenAI's error
    body (code server_busy) at once, and the two accepted ones are answered."""
    import time

    with ServerProcess("--no-vad", "--model", str(models("tiny")), "--no-align", "--max-upload-mb", "64",
                       "--max-queue", "1") as s:  # fmt: skip
        long = wav_bytes(600.0, seed=6)  # long enough to still run while the others arrive
        answers: dict[str, object] = {}

        def client(name: str, data: bytes) -> None:
            try:
                answers[name] = post(s, SE_FIELDS, data)
            except Qwen3ASRError as exc:
                answers[name] = exc

        def queued() -> int:
            with urllib.request.urlopen(f"{s.url}/health", timeout=10) as r:
                return json.loads(r.read())["queued"]

        first = threading.Thread(target=client, args=("first", long))
        first.start()
        second = None
        deadline = time.monotonic() + 60
        while queued() < 1 and time.monotonic() < deadline:
            if second is None and time.monotonic() > deadline - 59:  # the first has been sent a second ago
                second = threading.Thread(target=client, args=("second", wav_bytes(2.0)))
                second.start()
            time.sleep(0.05)
        assert queued() == 1 and "first" not in answers  # one running, one waiting
        boundary = "b0undary"
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
                f"Content-Type: audio/wav\r\n\r\n"
            ).encode()
            + wav_bytes(1.0)
            + f"\r\n--{boundary}--\r\n".encode()
        )
        asked = time.monotonic()
        status, raw = raw_post(s, body, f"multipart/form-data; boundary={boundary}")
        assert status == 503 and time.monotonic() - asked < 5, raw  # at once, not after the queue
        assert json.loads(raw)["error"]["code"] == "server_busy"
        assert "first" not in answers
        first.join()
        second.join()
        assert not isinstance(answers["first"], Exception), answers["first"]
        assert not isinstance(answers["second"], Exception), answers["second"]
        assert answers["second"]["segments"] is not None


def test_a_request_can_set_vad_for_itself(server):
    """This server runs with --no-vad (the tests' tone is not speech); `vad=true` on a request turns VAD on for
    that request alone (nothing heard in the tone), `vad=false` keeps it off; any other value is a 400."""
    from qwen3asr_plugin.engine.errors import Qwen3ASRError

    audio = wav_bytes(4.0)
    on = post(server, [*SE_FIELDS, ("vad", "true")], audio)
    off = post(server, [*SE_FIELDS, ("vad", "false")], audio)
    plain = post(server, SE_FIELDS, audio)
    assert on["segments"] == [] and off["segments"] and off["segments"] == plain["segments"]
    with pytest.raises(Qwen3ASRError, match="vad must be true or false"):
        post(server, [*SE_FIELDS, ("vad", "maybe")], audio)

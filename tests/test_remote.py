"""The `openai` engine against a server that answers as vLLM serving Qwen3-ASR does (tests/vllm_like.py) and
against our own `qwen3asr serve`: the same words as the local engine on the same chunks, requests in flight
as --jobs says, vLLM's limits and errors met."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from qwen3asr_plugin.api import ASRModel
from qwen3asr_plugin.engine.audio import SAMPLE_RATE, iter_audio
from qwen3asr_plugin.engine.chunking import ChunkOptions, iter_chunks
from tests.media import write_wav
from tests.parity import speech_like
from tests.server_process import ServerProcess
from tests.vllm_like import VllmLikeServer

QWEN3ASR = str(Path(sys.executable).parent / "qwen3asr")


@pytest.fixture(scope="module")
def local(models):
    return ASRModel(models("tiny"), device="cpu", aligner=False)


@pytest.fixture(scope="module")
def talk(tmp_path_factory):
    return write_wav(tmp_path_factory.mktemp("remote") / "talk.wav", speech_like(16_000 * 100, seed=9))


def local_chunk_texts(local, wav: Path) -> list[str]:
    """What the local engine says for each chunk the client cuts, given the same 16-bit WAV the client sends,
    as the json output writes it (control characters out: writers.clean)."""
    from qwen3asr_plugin.engine.writers import clean

    texts = []
    for chunk in iter_chunks(iter_audio(wav), ChunkOptions()):
        buf = io.BytesIO()
        pcm = (np.clip(chunk.audio[: chunk.n_samples], -1, 1) * 32767).astype(np.int16)
        wavfile.write(buf, SAMPLE_RATE, pcm)
        buf.seek(0)
        _, data = wavfile.read(buf)
        segments, _ = local.transcribe(data.astype(np.float32) / 32768, vad_filter=False)
        texts.append(clean(" ".join(s.text for s in segments)))
    return texts


def remote(url: str, wav: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [QWEN3ASR, "transcribe", str(wav), "--engine", "openai", "--endpoint", f"{url}/v1", "-f", "json",
         "-o", str(out), "--quiet", "--no-vad", *args],
        capture_output=True, text=True,
    )  # fmt: skip


def squeeze(text: str) -> str:
    return "".join(text.split())


def test_a_vllm_server_hears_what_the_local_engine_hears(local, talk, tmp_path):
    with VllmLikeServer(local) as server:
        run = remote(server.url, talk, tmp_path, "--jobs", "4")
    assert run.returncode == 0, run.stderr
    data = json.loads((tmp_path / "talk.json").read_text(encoding="utf-8"))
    expected = local_chunk_texts(local, talk)
    assert len(expected) >= 4
    said = [s["text"] for s in data["segments"]]
    assert said == [t for t in expected if t.strip()]
    assert data["duration"] == pytest.approx(100.0, abs=0.01)  # from the samples: vLLM sends no duration
    log = server.api.log
    assert len(log) == len(expected)
    assert all(r["model"] == "Qwen/Qwen3-ASR-0.6B" and r["response_format"] == "json" for r in log)
    assert server.api.most_in_flight == 4  # --jobs 4: four chunk requests at once


def test_our_server_hears_the_same(local, models, talk, tmp_path):
    """The server's VAD is on (its default); the client's --no-vad still holds: it asks for none (`vad`)."""
    with ServerProcess("--model", str(models("tiny")), "--no-align") as server:
        run = remote(server.url, talk, tmp_path, "--jobs", "2")
    assert run.returncode == 0, run.stderr
    data = json.loads((tmp_path / "talk.json").read_text(encoding="utf-8"))
    assert squeeze(" ".join(s["text"] for s in data["segments"])) == squeeze(
        " ".join(local_chunk_texts(local, talk))
    )


def test_vllm_limits_and_errors(local, tmp_path):
    long = write_wav(
        tmp_path / "long.wav", speech_like(16_000 * 640, seed=2)
    )  # over vLLM's 600 s per request
    with VllmLikeServer(local) as server:
        run = remote(server.url, long, tmp_path, "--language", "English", "--jobs", "1")
        wrong = remote(server.url, long, tmp_path / "w", "--model", "qwen3-asr-0.6b")
    assert run.returncode == 0, run.stderr  # cut here into 20-30 s requests, each far under 25 MB and 600 s
    served = [r for r in server.api.log if r["model"] == "Qwen/Qwen3-ASR-0.6B"]
    assert len(served) >= 22 and {r.get("language") for r in served} == {"en"}  # 640 s in <= 30 s requests
    assert server.api.most_in_flight == 1  # --jobs 1
    assert wrong.returncode == 1
    assert "The model `qwen3-asr-0.6b` does not exist" in wrong.stderr and "Traceback" not in wrong.stderr


def test_a_batch_of_short_files_keeps_the_server_busy(local, tmp_path):
    """Eight 8 s files (one chunk each): with --jobs 4 the batch sends four files' requests at once."""
    files = [write_wav(tmp_path / f"clip{i}.wav", speech_like(16_000 * 8, seed=20 + i)) for i in range(8)]
    with VllmLikeServer(local) as server:
        run = subprocess.run(
            [QWEN3ASR, "transcribe", *map(str, files), "--engine", "openai", "--endpoint", f"{server.url}/v1",
             "--jobs", "4", "-o", str(tmp_path / "out"), "--no-vad"],
            capture_output=True, text=True,
        )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert server.api.most_in_flight == 4 and len(server.api.log) == 8
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(f"clip{i}.srt" for i in range(8))
    assert run.stderr.count(" -> ") == 8 and "done: 8 file(s), 0 failed" in run.stderr


def test_jobs_bounds_the_requests_in_flight_over_the_whole_batch(local, tmp_path):
    """Three files of three or four chunks each with --jobs 2: two files run at once, each with chunks to send, and
    still at most two requests are in flight."""
    files = [write_wav(tmp_path / f"long{i}.wav", speech_like(16_000 * 65, seed=30 + i)) for i in range(3)]
    with VllmLikeServer(local) as server:
        run = subprocess.run(
            [QWEN3ASR, "transcribe", *map(str, files), "--engine", "openai", "--endpoint", f"{server.url}/v1",
             "--jobs", "2", "-o", str(tmp_path / "out"), "--quiet", "--no-vad"],
            capture_output=True, text=True,
        )  # fmt: skip
    assert run.returncode == 0, run.stderr
    chunks = sum(len(list(iter_chunks(iter_audio(f), ChunkOptions()))) for f in files)  # the client's cuts
    assert server.api.most_in_flight == 2 and len(server.api.log) == chunks >= 9

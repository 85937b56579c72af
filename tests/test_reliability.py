"""Bad media, damaged models, interruptions: one clear line, a non-zero exit, nothing lost or half-written."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from tests.media import ffmpeg, video_with_audio, write_wav
from tests.parity import speech_like

QWEN3ASR = str(Path(sys.executable).parent / "qwen3asr")


def transcribe(models, *args, **kw):
    return subprocess.run(
        [
            QWEN3ASR,
            "transcribe",
            "--model",
            str(models("tiny")),
            "--no-align",
            "--device",
            "cpu",
            "--no-vad",
            "--quiet",
            *args,
        ],
        capture_output=True,
        text=True,
        **kw,
    )


@pytest.fixture(scope="module")
def bad_media(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad media")
    (d / "empty.wav").write_bytes(b"")
    (d / "notes.mp4").write_text("this is text, not a video")
    good = video_with_audio(d / "good.mp4", write_wav(d / "src.wav", speech_like(16_000 * 6)))
    (d / "truncated.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    (d / "src.wav").unlink()
    return d


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("empty.wav", "not a media file"),
        ("notes.mp4", "not a media file"),
        ("truncated.mp4", "not a media file"),
        ("missing.wav", "no such file"),
    ],
)
def test_bad_media_one_line_no_output(models, bad_media, tmp_path, name, message):
    run = transcribe(models, str(bad_media / name), "-o", str(tmp_path))
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 2 and message in lines[0] and name in lines[0] and "Traceback" not in run.stderr
    assert list(tmp_path.iterdir()) == []


def test_truncated_mkv_is_an_error_not_a_short_subtitle(models, tmp_path):
    full = tmp_path / "full.mkv"
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=160x120:rate=10",
        "-f",
        "lavfi",
        "-i",
        "sine=f=300:d=20",
        "-shortest",
        "-c:v",
        "mpeg4",
        "-c:a",
        "flac",
        str(full),
    )
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size * 2 // 5])
    run = transcribe(models, str(cut), "-o", str(tmp_path / "out"))
    assert run.returncode == 1
    assert "cut.mkv: truncated or damaged" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "out" / "cut.srt").exists()


def test_batch_goes_past_bad_files_and_reports_them(models, bad_media, tmp_path):
    run = transcribe(models, str(bad_media), "-o", str(tmp_path), "--format", "txt")
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1] == "qwen3asr: 3 of 4 inputs failed"
    assert [p.name for p in tmp_path.iterdir()] == ["good.txt"]


def test_tiny_clip_multichannel_and_odd_rates(models, tmp_path):
    tiny = write_wav(tmp_path / "tiny clip.wav", speech_like(1_600))  # 0.1 s
    stereo = tmp_path / "stereo 44k ü.wav"
    x = speech_like(44_100 * 3)
    wavfile.write(stereo, 44_100, np.stack([x, 0.5 * x], axis=1))
    run = transcribe(models, str(tiny), str(stereo), "--format", "json", "-o", str(tmp_path / "out"))
    assert run.returncode == 0, run.stderr
    data = json.loads((tmp_path / "out" / "stereo 44k ü.json").read_text(encoding="utf-8"))
    assert data["duration"] == pytest.approx(3.0, abs=0.01)
    assert json.loads((tmp_path / "out" / "tiny clip.json").read_text(encoding="utf-8"))[
        "duration"
    ] == pytest.approx(0.1, abs=0.01)


def test_an_hour_of_silence_gives_an_empty_subtitle(models, tmp_path):
    silence = tmp_path / "silence.flac"
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "3600", "-c:a", "flac", str(silence))
    run = transcribe(models, str(silence), "--vad", "--format", "srt,json")
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "silence.srt").read_text() == ""
    assert json.loads((tmp_path / "silence.json").read_text())["segments"] == []


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_stopped_run_leaves_existing_subtitles_and_no_temp_files(models, tmp_path, stop):
    src = write_wav(tmp_path / "long.wav", speech_like(16_000 * 600))
    srt = tmp_path / "long.srt"
    srt.write_text("my edits")
    proc = subprocess.Popen(
        [
            QWEN3ASR,
            "transcribe",
            "--model",
            str(models("tiny")),
            "--no-align",
            "--device",
            "cpu",
            "--no-vad",
            "--json-progress",
            "--overwrite",
            str(src),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in proc.stdout:
        if json.loads(line)["event"] == "progress":
            break
    proc.send_signal(stop)
    proc.wait(timeout=60)
    assert proc.returncode == 130
    assert proc.stderr.read().strip().splitlines()[-1] == "qwen3asr: interrupted"  # no traceback
    assert srt.read_text() == "my edits"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.srt", "long.wav"]


def test_sigterm_during_a_progressive_run_leaves_no_partial_subtitles(models, tmp_path):
    """Killed once the progressive file exists (after the first segment): the half-made subtitles of this
    run go, with no temporary files; nothing else in the folder changes."""
    src = write_wav(tmp_path / "long.wav", speech_like(16_000 * 120, seed=3))
    proc = subprocess.Popen(
        [QWEN3ASR, "transcribe", "--model", str(models("tiny")), "--no-align", "--device", "cpu", "--no-vad",
         "--json-progress", "--progressive", "--batch-size", "1", str(src)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    for line in proc.stdout:
        if json.loads(line)["event"] == "update":  # the progressive file was written
            assert (tmp_path / "long.srt").exists()
            break
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert proc.returncode == 130
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.wav"]


def test_an_interrupted_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    """Ctrl-C while a subtitle file is being written: the file it would replace stays whole, and the
    temporary file beside it goes."""
    from qwen3asr_plugin.engine import files

    target = tmp_path / "talk.srt"
    target.write_text("my edits", encoding="utf-8")

    class Interrupted:
        def __init__(self, real):
            self.real = real

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.real.close()

        def write(self, text):
            self.real.write(text[: len(text) // 2])
            self.real.flush()
            raise KeyboardInterrupt

    monkeypatch.setattr(files, "open", lambda *a, **k: Interrupted(open(*a, **k)), raising=False)  # noqa: SIM115
    with pytest.raises(KeyboardInterrupt):
        files.write_atomic(target, "1\n00:00:00,000 --> 00:00:01,000\nnew\n", overwrite=True)
    assert target.read_text(encoding="utf-8") == "my edits"
    assert [p.name for p in tmp_path.iterdir()] == ["talk.srt"]


def test_resume_skips_finished_inputs(models, tmp_path):
    a = write_wav(tmp_path / "a.wav", speech_like(16_000 * 2))
    b = write_wav(tmp_path / "b.wav", speech_like(16_000 * 2, seed=5))
    (tmp_path / "a.srt").write_text("done before")
    run = transcribe(models, str(a), str(b), "--skip-existing")
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "a.srt").read_text() == "done before" and (tmp_path / "b.srt").exists()


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def _broken_copy(models, tmp_path, edit) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(models("tiny"), folder)
    edit(folder)
    return folder


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda f: (f / "decoder.q8_0.gguf").write_bytes(b"GGUF" + b"\0" * 100),
            "decoder.q8_0.gguf: 104 bytes",
        ),
        (lambda f: (f / "encoder_backend.fp32.onnx").unlink(), "encoder_backend.fp32.onnx: missing"),
        (
            lambda f: (f / "encoder_frontend.fp32.onnx.data").unlink(),
            "encoder_frontend.fp32.onnx.data: missing",
        ),
        (lambda f: _flip_last_byte(f / "decoder.q8_0.gguf"), "decoder.q8_0.gguf: corrupt"),
        (
            lambda f: (f / "model.json").write_text(
                json.dumps({**json.loads((f / "model.json").read_text()), "format_version": 7})
            ),
            "newer",
        ),
        (
            lambda f: (f / "model.json").write_text(
                json.dumps(
                    {
                        **json.loads((f / "model.json").read_text()),
                        "audio": {**json.loads((f / "model.json").read_text())["audio"], "output_dim": 32},
                    }
                )
            ),
            "32-wide embeddings",
        ),
    ],
)
def test_damaged_model_folders_name_the_fix(models, tmp_path, edit, message):
    folder = _broken_copy(models, tmp_path, edit)
    wav = write_wav(tmp_path / "a.wav", speech_like(16_000))
    run = subprocess.run(
        [
            QWEN3ASR,
            "transcribe",
            "--model",
            str(folder),
            "--no-align",
            "--device",
            "cpu",
            "--encoder-precision",
            "fp32",  # the files damaged above (the CPU's default may be q8)
            "--no-vad",
            str(wav),
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert message in run.stderr
    assert "qwen3asr convert" in run.stderr or "upgrade" in run.stderr
    assert not (tmp_path / "a.srt").exists()

"""Model names, folders and `models pull`, against a local stand-in for the Hugging Face Hub."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from scipy.io import wavfile

from qwen3asr_plugin.engine import model_store
from qwen3asr_plugin.engine.errors import ModelError
from tests.hub_server import COMMIT, HubServer
from tests.parity import speech_like

QWEN3ASR = str(Path(sys.executable).parent / "qwen3asr")


@pytest.fixture
def hub(tiny_checkpoint, checkpoints, tmp_path, monkeypatch):
    repos = {
        "Qwen/Qwen3-ASR-0.6B": tiny_checkpoint,
        "Qwen/Qwen3-ForcedAligner-0.6B": checkpoints("aligner-tiny"),
    }
    with HubServer(repos) as server:
        env = {
            "HF_ENDPOINT": server.url,
            "HF_HOME": str(tmp_path / "hf"),
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "QWEN3ASR_MODELS_DIR": str(tmp_path / "models"),
        }
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        server.env = {**os.environ, **env}
        yield server


def run(args, env):
    return subprocess.run([QWEN3ASR, *args], capture_output=True, text=True, env=env)


def test_pull_downloads_and_converts(hub, tmp_path):
    result = run(["models", "pull", "qwen3-asr-0.6b"], hub.env)
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "models" / "qwen3-asr-0.6b"
    info = json.loads((folder / "model.json").read_text())
    assert info["source"]["repo"] == "Qwen/Qwen3-ASR-0.6B" and info["source"]["revision"] == COMMIT
    from qwen3asr_plugin.engine.decoder import preferred_quant

    assert {f"decoder.{preferred_quant()}.gguf", "encoder_frontend.fp32.onnx"} <= set(info["files"])
    assert any(r.startswith("GET /Qwen/Qwen3-ASR-0.6B/resolve/") for r in hub.requests)
    assert "model.safetensors" in " ".join(hub.requests)

    listing = run(["models", "list"], hub.env)
    assert "qwen3-asr-0.6b" in listing.stdout and "installed (default)" in listing.stdout
    assert run(["models", "path", "qwen3-asr-0.6b"], hub.env).stdout.strip() == str(folder)


def test_transcribe_pulls_the_default_model_on_first_use(hub, tmp_path):
    wav = tmp_path / "a.wav"
    wavfile.write(wav, 16_000, speech_like(16_000 * 2))
    assert not model_store.is_installed("qwen3-asr-0.6b")
    result = run(["transcribe", str(wav), "--quiet", "--no-vad"], hub.env)  # a tone, not speech
    assert result.returncode == 0, result.stderr
    assert model_store.is_installed("qwen3-asr-0.6b")
    assert model_store.is_installed("qwen3-forcedaligner-0.6b")  # the default comes with its aligner
    srt = (tmp_path / "a.srt").read_text(encoding="utf-8")
    assert "-->" in srt  # the random model says something, timed by the aligner


def test_a_preset_aligner_of_the_old_layout_is_converted_again_on_use(hub, tmp_path):
    """An aligner folder written before format 2 (class head beside an embedding-mode decoder) counts as not
    installed: the next run converts it again from huggingface_hub's cache, without downloading again."""
    wav = tmp_path / "a.wav"
    wavfile.write(wav, 16_000, speech_like(16_000 * 2))
    assert run(["transcribe", str(wav), "--quiet", "--no-vad"], hub.env).returncode == 0
    folder = tmp_path / "models" / "qwen3-forcedaligner-0.6b"
    meta = json.loads((folder / "model.json").read_text())
    meta["format_version"] = 1
    (folder / "model.json").write_text(json.dumps(meta))
    assert not model_store.is_installed("qwen3-forcedaligner-0.6b")
    assert "outdated (converted again on first use)" in run(["models", "list"], hub.env).stdout
    downloads = [r for r in hub.requests if "model.safetensors" in r]
    result = run(["transcribe", str(wav), "--quiet", "--no-vad", "--overwrite"], hub.env)
    assert result.returncode == 0, result.stderr
    assert json.loads((folder / "model.json").read_text())["format_version"] == 2
    assert model_store.is_installed("qwen3-forcedaligner-0.6b")
    assert [r for r in hub.requests if "model.safetensors" in r and "/resolve/" in r] == [
        r for r in downloads if "/resolve/" in r
    ]  # the weights came from the cache


def test_unreachable_hub_is_one_clear_line(tmp_path, monkeypatch):
    env = {
        **os.environ,
        "HF_ENDPOINT": "http://127.0.0.1:9",
        "HF_HOME": str(tmp_path / "hf"),
        "QWEN3ASR_MODELS_DIR": str(tmp_path / "models"),
        "HF_HUB_ETAG_TIMEOUT": "2",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    result = run(["models", "pull", "qwen3-asr-1.7b"], env)
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("qwen3asr: error: could not download Qwen/Qwen3-ASR-1.7B")
    )
    assert not (tmp_path / "models" / "qwen3-asr-1.7b").exists()


def test_resolving_names_and_folders(tiny_model, tiny_checkpoint, monkeypatch, tmp_path):
    monkeypatch.setenv("QWEN3ASR_MODELS_DIR", str(tmp_path / "none"))
    assert model_store.resolve_model(str(tiny_model)) == tiny_model
    with pytest.raises(ModelError, match="models pull qwen3-asr-1.7b"):
        model_store.resolve_model("qwen3-asr-1.7b", pull_missing=False)
    with pytest.raises(ModelError, match="run `qwen3asr convert` on it"):
        model_store.resolve_model(str(tiny_checkpoint))
    with pytest.raises(ModelError, match="no such model"):
        model_store.resolve_model(str(tmp_path / "missing"))


@pytest.mark.skipif(__import__("shutil").which("mpv") is None, reason="mpv is installed by tests/run.sh")
def test_a_first_press_in_mpv_says_that_the_model_is_being_fetched(hub, tmp_path):
    """On a fresh install the first press downloads and converts the model (minutes for real weights): the
    engine says so in `status` events as it happens, and the mpv script shows them."""
    from qwen3asr_plugin.hosts.mpv import script_path
    from tests.media import video_with_audio, write_wav
    from tests.mpv_ipc import Mpv
    from tests.test_mpv import wait_for

    film = video_with_audio(tmp_path / "film.mp4", write_wav(tmp_path / "a.wav", speech_like(16_000 * 4)))
    mpv = Mpv(
        tmp_path / "mpv.sock",
        f"--script={script_path()}",
        f"--script-opts=qwen3asr-command={QWEN3ASR},qwen3asr-extra_args=--no-vad",
        env=hub.env,
    )
    try:
        mpv.command("loadfile", str(film))
        assert wait_for(lambda: mpv.get("duration"), 20, mpv)
        mpv.command("script-message-to", "qwen3asr", "generate")
        assert wait_for(lambda: mpv.messages("qwen3asr-done"), 180, mpv), mpv.messages("qwen3asr-failed")
        said = [m[0] for m in mpv.messages("qwen3asr-status")]
        assert said[0] == "loading the model"
        assert any(m.startswith("downloading Qwen/Qwen3-ASR-0.6B") for m in said)
        assert any(m.startswith("converting") for m in said)
    finally:
        mpv.close()

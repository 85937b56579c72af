"""The decoder and the aligner with their layers offloaded to a GPU by llama.cpp, against the reference and
the CPU path to the bars of the CPU tests, and `--gpu-layers` / `--device-index` reaching llama.cpp.

These need a llama.cpp built with a GPU backend, named by QWEN3ASR_TEST_GPU_LIB (a folder with libllama and
its ggml libraries, loaded through llama-cpp-python's LLAMA_CPP_LIB_PATH). `bash tests/gpu_offload.sh` builds
llama.cpp's Vulkan backend from the llama-cpp-python source in use and runs them on Mesa's lavapipe, a
Vulkan device in software, so no GPU is needed; on a machine with a GPU, point QWEN3ASR_TEST_GPU_LIB at a
CUDA, Vulkan or Metal build. Each run is its own process: a library is loaded once per process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from qwen3asr_plugin.engine.convert import convert
from qwen3asr_plugin.engine.mel import log_mel
from qwen3asr_plugin.engine.model_folder import load_model_info
from tests.offload_check import ASR_AUDIO, STEPS
from tests.parity import cosine
from tests.reference import reference_generate, reference_logits, reference_model
from tests.test_full_depth import BARS, agreeing

GPU_LIB = os.environ.get("QWEN3ASR_TEST_GPU_LIB")
pytestmark = pytest.mark.skipif(
    not GPU_LIB, reason="no GPU build of llama.cpp named (QWEN3ASR_TEST_GPU_LIB; bash tests/gpu_offload.sh)"
)


def run(
    kind: str, model, out, *args: str, gpu: bool = True, log: bool = False, **more_env: str
) -> tuple[dict, str]:
    """tests/offload_check.py in a process of its own: with the GPU build, or llama-cpp-python's own."""
    env = dict(os.environ, **more_env)
    env.pop("LLAMA_CPP_LIB_PATH", None)
    if gpu:
        env["LLAMA_CPP_LIB_PATH"] = GPU_LIB
    if log:
        env["QWEN3ASR_LLAMA_LOG"] = "1"
    done = subprocess.run(
        [sys.executable, "-m", "tests.offload_check", kind, str(model), str(out), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    if done.returncode:
        return {}, done.stderr
    with np.load(out) as saved:
        result = {k: saved[k] for k in saved.files}
    result["about"] = json.loads(str(result["about"]))
    return result, done.stderr


@pytest.fixture(scope="module")
def depth(checkpoints, tmp_path_factory):
    """The 0.6B text model at full depth (tests/test_full_depth.py's geometry) and its reference."""
    ckpt = checkpoints("0.6b-depth")
    folder = convert(ckpt, tmp_path_factory.mktemp("depth") / "model", ("fp32",), ("f32", "q8_0"))
    info = load_model_info(folder)
    out = tmp_path_factory.mktemp("runs")
    cpu, err = run("asr", folder, out / "cpu.npz", "--quant", "f32", "--kv-f32", gpu=False)
    assert cpu, err
    from qwen3asr_plugin.engine.pipeline import AsrPipeline  # noqa: F401  (the prompt ids come from it)
    from tests.test_full_depth import run as cpu_run

    ids = cpu_run(info, "f32", True, 1).prompt.token_ids()
    model = reference_model(ckpt)
    mel = log_mel(ASR_AUDIO)
    ref = {
        "logits": reference_logits(model, ids, mel),
        "tokens": reference_generate(model, ids, mel, STEPS, list(info.eos_token_ids)),
    }
    return folder, ref, cpu, out


@pytest.mark.parametrize(("quant", "kv_f32"), [("f32", True), ("q8_0", False)], ids=["f32", "q8_0"])
def test_every_layer_offloaded_matches_the_reference_and_the_cpu(depth, quant, kv_f32):
    folder, ref, cpu, out = depth
    args = ["--quant", quant, "--gpu-layers", "-1", *(["--kv-f32"] if kv_f32 else [])]
    gpu, err = run("asr", folder, out / f"gpu-{quant}.npz", *args, log=True)
    assert gpu, err
    assert gpu["about"]["gpus"] and gpu["about"]["library"].startswith(GPU_LIB)
    assert re.search(r"offloaded 29/29 layers to GPU", err), err[-2000:]  # 28 layers and the output layer
    diff = float(np.abs(gpu["logits"] - ref["logits"]).max())
    score = cosine(gpu["logits"], ref["logits"])
    same = agreeing(gpu["tokens"].tolist(), ref["tokens"])
    print(f"\n{gpu['about']['gpus'][0]}, 28 layers offloaded, {quant}: max abs diff {diff:.2e}, cosine "
          f"{score:.6f}, greedy tokens identical {same} of {len(ref['tokens'])}")  # fmt: skip
    # The bars of the CPU path with f16 arithmetic: ggml-vulkan multiplies in f16 where the device can
    # (lavapipe can). Measured on lavapipe: f32 weights and KV 3.3e-03 / 0.999999 (7.2e-04 with
    # GGML_VK_DISABLE_F16=1), q8_0 below; the CPU's f32 path is at 3.0e-06, its f16 KV at 3.4e-03.
    bar_diff, bar_cosine = BARS[(quant, False)]
    assert diff <= bar_diff and score >= bar_cosine
    if kv_f32:  # f32 weights: every greedy step is still the reference's, as on the CPU
        assert gpu["tokens"].tolist() == ref["tokens"] == cpu["tokens"].tolist()


def test_the_aligner_offloaded_gives_the_reference_slots(models, checkpoints, tmp_path):
    from qwen3asr_plugin.engine.aligner import ForcedAligner, split_units
    from qwen3asr_plugin.engine.decoder import DecoderOptions
    from qwen3asr_plugin.engine.encoder import EncoderOptions
    from tests.offload_check import ALIGNER_AUDIO, ALIGNER_TEXT
    from tests.reference import reference_aligner_classes

    folder = models("aligner-0.6b-heads")
    gpu, err = run("aligner", folder, tmp_path / "gpu.npz", "--quant", "f32", "--gpu-layers", "-1", log=True)
    assert gpu, err
    assert re.search(r"offloaded 3/3 layers to GPU", err), err[-2000:]
    info = load_model_info(folder)
    al = ForcedAligner(info, EncoderOptions(precision="fp32", device="cpu"), DecoderOptions(quant="f32"))
    units = split_units(ALIGNER_TEXT)
    mel = log_mel(ALIGNER_AUDIO)
    n_audio = al.encoder.num_tokens(mel.shape[1])
    prefix, text_part = al.input_ids(n_audio, units)
    ids = prefix + [info.token_ids["audio_pad"]] * n_audio + text_part
    ref = reference_aligner_classes(
        reference_model(checkpoints("aligner-0.6b-heads")), ids, mel, info.token_ids["timestamp"]
    )
    agreement = float((gpu["classes"] == ref).mean())
    print(f"\naligner offloaded: {agreement:.3f} of {ref.size} slots as the reference's")
    assert gpu["classes"].shape == ref.shape and agreement >= 0.99  # the CPU path's bar (test_aligner)


def test_gpu_layers_and_device_index_reach_llama_cpp(models, tmp_path):
    folder = models("0.6b-heads")  # one text layer: 2 offloadable layers with the output layer
    some, err = run("asr", folder, tmp_path / "a.npz", "--gpu-layers", "1", log=True)
    assert some and re.search(r"offloaded 1/2 layers to GPU", err), err[-2000:]
    none, err = run("asr", folder, tmp_path / "b.npz", "--gpu-layers", "0", log=True)
    assert none and not re.search(r"offloaded [1-9]\d*/\d+ layers to GPU", err), err[-2000:]
    n = len(some["about"]["gpus"])
    wrong, err = run("asr", folder, tmp_path / "c.npz", "--gpu-layers", "-1", "--device-index", str(n))
    assert not wrong
    last = err.strip().splitlines()[-1]
    assert f"--device-index {n}: llama.cpp sees {n} GPU" in last and "choose one of these" in last


def test_device_index_puts_the_whole_decoder_on_that_gpu(models, tmp_path):
    """With two GPUs, layers are not split between them: llama.cpp honours main_gpu only with
    LLAMA_SPLIT_MODE_NONE (src/llama.cpp, llama_model_load), which the decoder asks for."""
    if "vulkan" not in " ".join(os.listdir(GPU_LIB)).lower():
        pytest.skip("two devices are made by naming lavapipe twice in ggml-vulkan's GGML_VK_VISIBLE_DEVICES")
    folder = models("0.6b-heads")
    two = {"GGML_VK_VISIBLE_DEVICES": "0,0"}  # ggml_vk_instance_init: the same device as Vulkan0 and Vulkan1
    for index in (1, 0):
        result, err = run("asr", folder, tmp_path / f"{index}.npz", "--gpu-layers", "-1",
                          "--device-index", str(index), log=True, **two)  # fmt: skip
        assert result and len(result["about"]["gpus"]) == 2, err[-2000:]
        placed = re.findall(r"layer +\d+ assigned to device (\w+)", err)
        assert placed and set(placed) == {f"Vulkan{index}"}, placed
        assert set(re.findall(r"KV buffer size|dev = (\w+)", err)) - {""} == {f"Vulkan{index}"}


def test_a_model_that_does_not_fit_says_so_in_one_line(models, tmp_path, monkeypatch):
    if "vulkan" not in " ".join(os.listdir(GPU_LIB)).lower():
        pytest.skip("the memory limit is set through ggml-vulkan's GGML_VK_FORCE_MAX_ALLOCATION_SIZE")
    # ggml-vulkan.cpp (ggml_vk_get_device): the largest allocation the device allows, here 64 KiB, less
    # than one weight matrix: llama.cpp cannot place the model, as on a GPU whose memory is full.
    monkeypatch.setenv("GGML_VK_FORCE_MAX_ALLOCATION_SIZE", str(64 << 10))
    monkeypatch.setenv("GGML_VK_FORCE_MAX_BUFFER_SIZE", str(64 << 10))
    env = dict(os.environ, LLAMA_CPP_LIB_PATH=GPU_LIB)
    audio = tmp_path / "a.wav"
    from scipy.io import wavfile

    wavfile.write(audio, 16_000, (ASR_AUDIO * 20000).astype(np.int16))
    done = subprocess.run(
        [sys.executable, "-m", "qwen3asr_plugin", "transcribe", str(audio), "--model", str(models("0.6b-heads")),
         "--no-align", "--no-vad", "-o", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    # One line of ours (ggml-vulkan writes its own allocation failure to stderr as well, and the CLI its
    # summary: "done: ..." and "1 of 1 inputs failed").
    ours = [line for line in done.stderr.splitlines() if line.startswith("qwen3asr: error:")]
    assert done.returncode != 0 and len(ours) == 1, done.stderr
    assert "on GPU 0 (" in ours[0] and "--gpu-layers N" in ours[0] and "--device cpu" in ours[0], ours[0]
    assert not list(tmp_path.glob("*.srt"))


def test_devices_lists_the_gpu(tmp_path):
    env = dict(os.environ, LLAMA_CPP_LIB_PATH=GPU_LIB)
    done = subprocess.run(
        [sys.executable, "-m", "qwen3asr_plugin", "devices", "--json"],
        capture_output=True,
        text=True,
        env=env,
    )
    found = json.loads(done.stdout)
    assert found["decoder"]["library"].startswith(GPU_LIB) and found["decoder"]["gpus"]
    assert found["decoder"]["gpus"][0]["index"] == 0 and found["decoder"]["gpus"][0]["total_mib"] > 0

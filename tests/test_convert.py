"""`qwen3asr convert`: the model folder's contents, model.json, safety of the destination, no torch needed."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qwen3asr_plugin.engine import convert as convert_module
from qwen3asr_plugin.engine.convert import convert
from qwen3asr_plugin.engine.errors import ModelError, Qwen3ASRError
from qwen3asr_plugin.engine.model_folder import load_model_info, sha256_of
from tests.fixtures.checkpoint import make_checkpoint


def test_model_json_is_read_from_the_checkpoint(tiny_checkpoint, tiny_model):
    cfg = json.loads((tiny_checkpoint / "config.json").read_text())
    thinker = cfg["thinker_config"]
    info = load_model_info(tiny_model)
    assert info.kind == "asr"
    assert info.audio.d_model == thinker["audio_config"]["d_model"]
    assert info.audio.n_window_infer == thinker["audio_config"]["n_window_infer"]
    assert info.text.hidden_size == thinker["text_config"]["hidden_size"]
    assert info.text.vocab_size == thinker["text_config"]["vocab_size"]
    assert info.token_ids["audio_pad"] == thinker["audio_token_id"]
    assert info.token_ids["im_start"] == 1001 and info.token_ids["asr_text"] == 1061
    assert set(info.eos_token_ids) == {1000, 1002}
    assert info.mel.num_mel_bins == 128 and info.mel.hop_length == 160
    assert info.encoder_precisions == ["fp32", "fp16", "int8"]
    assert "English" in info.languages
    for name, entry in info.files.items():
        path = tiny_model / name
        assert path.stat().st_size == entry["bytes"]
        assert sha256_of(path) == entry["sha256"]
    assert sorted(p.name for p in tiny_model.iterdir()) == sorted([*info.files, "model.json"])


def test_aligner_checkpoint_converts_with_its_head_facts(tmp_path):
    ckpt = make_checkpoint(tmp_path / "al", "aligner-tiny")
    info = load_model_info(convert(ckpt, tmp_path / "alm"))
    assert info.kind == "aligner"
    assert info.raw["aligner"] == {"classify_num": 5000, "timestamp_segment_ms": 80}
    assert info.token_ids["timestamp"] == 1062


def test_conversion_does_not_need_torch(tiny_checkpoint, tmp_path):
    """Users convert official checkpoints with `pip install qwen3asr-plugin` alone: no torch, no transformers."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'transformers'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from qwen3asr_plugin.cli import main\n"
        f"sys.exit(main(['convert', {str(tiny_checkpoint)!r}, {str(tmp_path / 'out')!r}, "
        "'--encoder-precision', 'all', '--quiet']))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert load_model_info(tmp_path / "out").encoder_precisions == ["fp32", "fp16", "int8"]


def test_refuses_unrelated_folder_and_other_model(tiny_checkpoint, tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(Qwen3ASRError, match="not a model folder"):
        convert(tiny_checkpoint, busy)
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]

    other = make_checkpoint(tmp_path / "other", "aligner-tiny")
    dest = convert(tiny_checkpoint, tmp_path / "m")
    with pytest.raises(Qwen3ASRError, match="different model"):
        convert(other, dest)


def test_adding_a_precision_keeps_the_others(tiny_checkpoint, tmp_path):
    dest = convert(tiny_checkpoint, tmp_path / "m", encoder_precisions=["fp32"])
    before = load_model_info(dest).files["encoder_backend.fp32.onnx"]
    convert(tiny_checkpoint, dest, encoder_precisions=["int8"])
    info = load_model_info(dest)
    assert info.encoder_precisions == ["fp32", "int8"]
    assert info.files["encoder_backend.fp32.onnx"] == before


def test_interrupted_conversion_leaves_no_model_json_or_temp_files(tiny_checkpoint, tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    dest = tmp_path / "out" / "m"
    updated = convert(tiny_checkpoint, tmp_path / "existing", encoder_precisions=["fp32"])
    before = sorted(p.name for p in updated.iterdir())
    monkeypatch.setattr(convert_module, "build_backend", boom)
    for target, precision in ((dest, "fp32"), (updated, "fp16")):
        with pytest.raises(KeyboardInterrupt):
            convert(tiny_checkpoint, target, encoder_precisions=[precision])
    assert not dest.exists() and list((tmp_path / "out").iterdir()) == []
    assert sorted(p.name for p in updated.iterdir()) == before
    monkeypatch.undo()
    convert(tiny_checkpoint, dest)  # a retry after an interruption just works
    assert load_model_info(dest).encoder_precisions == ["fp32"]


def test_damaged_or_newer_model_folders_give_clear_errors(tiny_checkpoint, tmp_path):
    dest = convert(tiny_checkpoint, tmp_path / "m")
    info = load_model_info(dest)
    backend = dest / "encoder_backend.fp32.onnx"
    backend.write_bytes(backend.read_bytes()[:1000])
    with pytest.raises(ModelError, match="truncated.*qwen3asr convert"):
        info.path("encoder_backend.fp32.onnx")
    raw = json.loads((dest / "model.json").read_text())
    raw["format_version"] = 99
    (dest / "model.json").write_text(json.dumps(raw))
    with pytest.raises(ModelError, match="newer"):
        load_model_info(dest)
    with pytest.raises(ModelError, match="run `qwen3asr convert` on it"):
        load_model_info(tiny_checkpoint)


def test_cli_errors_are_one_line(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "qwen3asr_plugin", "convert", str(tmp_path / "nope"), str(tmp_path / "out")],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "nope" in lines[0] and "Traceback" not in run.stderr
    assert not (tmp_path / "out").exists()


def test_cli_converts(tiny_checkpoint, tmp_path):
    run = subprocess.run(
        [
            str(Path(sys.executable).parent / "qwen3asr"),
            "convert",
            str(tiny_checkpoint),
            str(tmp_path / "o"),
            "--encoder-precision",
            "fp32,int8",
            "--decoder-quant",
            "f16,q6_k,q4_k",
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    info = load_model_info(tmp_path / "o")
    assert info.encoder_precisions == ["fp32", "int8"]
    assert info.decoder_quants == ["f16", "q6_k", "q4_k"]


@pytest.mark.parametrize(("native", "expected"), [("1", "bf16"), ("0", "q8_0")])
def test_default_decoder_type_follows_the_cpu(tiny_checkpoint, tmp_path, monkeypatch, native, expected):
    """`auto` (the default) writes bf16 where llama.cpp has bf16 dot products, else q8_0, and the engine then
    picks that file; both are read back by llama.cpp."""
    from qwen3asr_plugin.engine.decoder import DecoderOptions, TextDecoder, default_quant

    monkeypatch.setenv("QWEN3ASR_NATIVE_BF16", native)
    info = load_model_info(convert(tiny_checkpoint, tmp_path / "m", encoder_precisions=["fp32"]))
    assert info.decoder_quants == [expected]
    decoder = TextDecoder(info, DecoderOptions())
    assert decoder.quant == expected
    decoder.close()
    # With both types in a folder, the CPU's kind decides; a GPU takes f16 when present.
    assert default_quant(["q8_0", "bf16"], gpu=False, bf16=True) == "bf16"
    assert default_quant(["q8_0", "bf16"], gpu=False, bf16=False) == "q8_0"
    assert default_quant(["f16", "q8_0", "bf16"], gpu=True) == "f16"
    assert default_quant(["q6_k", "bf16"], gpu=False, bf16=False) == "q6_k"


def test_too_little_free_space_is_said_before_writing(tiny_checkpoint, tmp_path, monkeypatch):
    """Conversion stages a full f32 GGUF before quantizing (about 7 GB at 1.7B): with less free space than
    the outputs and staged files need it stops at once, naming the sizes, and writes nothing."""
    import shutil as shutil_module

    from qwen3asr_plugin.engine.hf_checkpoint import load_checkpoint

    ckpt = load_checkpoint(tiny_checkpoint)
    needed = convert_module.space_needed(ckpt, ["fp32"], ["q8_0"])
    text = sum(int(np.prod(ckpt.tensors.shape(n))) for n in ckpt.tensors.keys() if "audio_tower" not in n)  # noqa: SIM118
    assert needed > 4 * text  # the staged f32 decoder counts
    assert convert_module.space_needed(ckpt, ["fp32"], ["f32", "q8_0"]) < needed + 1.1 * text  # not twice
    real = shutil_module.disk_usage

    def nearly_full(path):
        usage = real(path)
        return usage._replace(free=needed // 2)

    monkeypatch.setattr(convert_module.shutil, "disk_usage", nearly_full)
    out = tmp_path / "out"
    with pytest.raises(Qwen3ASRError, match=r"needs about .* GB free here .* free some space"):
        convert(tiny_checkpoint, out, decoder_quants=["q8_0"])
    assert list(tmp_path.iterdir()) == []  # no staging folder, no model folder


def test_a_failed_quantization_says_llama_cpps_reason(tmp_path):
    from qwen3asr_plugin.engine.gguf_export import quantize_gguf

    bad = tmp_path / "decoder.f32.gguf"
    bad.write_bytes(b"GGUF" + bytes(64))  # the magic, then nothing sensible
    with pytest.raises(Qwen3ASRError) as caught:
        quantize_gguf(bad, tmp_path / "decoder.q8_0.gguf", "q8_0")
    message = str(caught.value)
    assert "\n" not in message and "decoder.q8_0.gguf" in message
    assert "failed to quantize" in message and "failed to load model" in message  # llama.cpp's words

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
    assert info.encoder_precisions == ["fp32", "fp16", "int8", "q8"]
    assert "English" in info.languages
    for name, entry in info.files.items():
        path = tiny_model / name
        assert path.stat().st_size == entry["bytes"]
        assert sha256_of(path) == entry["sha256"]
    assert sorted(p.name for p in tiny_model.iterdir()) == sorted([*info.files, "model.json"])


def test_aligner_checkpoint_converts_with_its_head_facts(tmp_path):
    """The aligner's decoder GGUF has its class head as the output layer (kept f32 in every type) and no
    tokenizer; the tokenizer is in tokenizer.gguf and the input embeddings in an exact table."""
    from qwen3asr_plugin.engine.decoder import DecoderOptions, TextDecoder
    from qwen3asr_plugin.engine.gguf_export import embedding_rows, load_embeddings
    from qwen3asr_plugin.engine.safetensors_io import TensorStore

    ckpt = make_checkpoint(tmp_path / "al", "aligner-tiny")
    info = load_model_info(convert(ckpt, tmp_path / "alm", decoder_quants=["f32", "q8_0"]))
    assert info.kind == "aligner"
    assert info.raw["aligner"] == {
        "classify_num": 5000,
        "timestamp_segment_ms": 80,
        "embeddings": "token_embd.bf16.npy",  # the fixture is bfloat16, as the official checkpoints
    }
    assert info.token_ids["timestamp"] == 1062
    assert "tokenizer.gguf" in info.files and not any("head" in name for name in info.files)

    store = TensorStore(ckpt)
    table = load_embeddings(info.path(info.raw["aligner"]["embeddings"]))
    ids = [0, 17, 1062, info.text.vocab_size - 1]
    assert np.array_equal(embedding_rows(table, ids), store.get("thinker.model.embed_tokens.weight")[ids])
    from transformers import AutoTokenizer

    text = "hello world, 9:30 a.m."
    expected = AutoTokenizer.from_pretrained(str(ckpt)).encode(text, add_special_tokens=False)
    import gguf

    head = store.get("thinker.lm_head.weight")
    for quant in ("f32", "q8_0"):
        output = next(
            t
            for t in gguf.GGUFReader(info.path(f"decoder.{quant}.gguf")).tensors
            if t.name == "output.weight"
        )
        assert output.tensor_type == gguf.GGMLQuantizationType.F32  # the head is not quantized
        assert np.array_equal(np.asarray(output.data).reshape(head.shape), head)
        decoder = TextDecoder(info, DecoderOptions(quant=quant))
        assert decoder.n_vocab == 5000  # llama.cpp's output layer: the classes, not the vocabulary
        assert decoder.tokenize(text) == expected  # the checkpoint's own tokenizer, from tokenizer.gguf
        assert decoder.detokenize(expected) == text
        decoder.close()


def test_aligner_embedding_table_is_exact_in_either_width(tmp_path):
    """A bfloat16 table (the official checkpoints) is stored as its 16 bits, anything else as float32; both
    read back exactly."""
    import dataclasses

    from qwen3asr_plugin.engine.gguf_export import embedding_rows, load_embeddings, write_embeddings
    from qwen3asr_plugin.engine.hf_checkpoint import load_checkpoint

    ckpt = load_checkpoint(make_checkpoint(tmp_path / "al", "aligner-tiny"))
    bf16 = ckpt.tensors.get("thinker.model.embed_tokens.weight")
    f32 = bf16 + np.float32(1e-5) * np.sign(bf16)  # no longer bfloat16 values

    class Store:
        def __init__(self, table):
            self.table = table

        def get(self, name):
            assert name == "thinker.model.embed_tokens.weight"
            return self.table

    ids = list(range(0, bf16.shape[0], 7))
    for table, expected, width in ((bf16, "token_embd.bf16.npy", 2), (f32, "token_embd.f32.npy", 4)):
        out = tmp_path / expected.split(".")[1]
        out.mkdir()
        name = write_embeddings(dataclasses.replace(ckpt, tensors=Store(table)), out)
        assert name == expected
        assert (out / name).stat().st_size < table.size * width + 1024
        assert np.array_equal(embedding_rows(load_embeddings(out / name), ids), table[ids])


def test_an_aligner_folder_of_the_old_layout_is_converted_again(tmp_path):
    """Aligner folders of format 1 (class head beside an embedding-mode decoder) are refused with the fix,
    and converting into one replaces it whole."""
    ckpt = make_checkpoint(tmp_path / "al", "aligner-tiny")
    dest = convert(
        ckpt, tmp_path / "alm", encoder_precisions=["fp32", "int8"], decoder_quants=["q8_0", "f16"]
    )
    meta = json.loads((dest / "model.json").read_text())
    meta["format_version"] = 1
    (dest / "model.json").write_text(json.dumps(meta))
    (dest / "aligner_head.f32.npy").write_bytes(b"old")
    with pytest.raises(ModelError, match="converted by an older qwen3asr-plugin; convert it again"):
        load_model_info(dest)
    with pytest.raises(Qwen3ASRError, match="different model"):  # an ASR checkpoint does not replace it
        convert(make_checkpoint(tmp_path / "asr", "tiny"), dest)
    assert (dest / "aligner_head.f32.npy").exists()
    info = load_model_info(convert(ckpt, dest, encoder_precisions=["fp32"], decoder_quants=["q8_0"]))
    assert info.raw["format_version"] == 2
    assert info.encoder_precisions == ["fp32", "int8"] and info.decoder_quants == ["f16", "q8_0"]  # kept
    assert not (dest / "aligner_head.f32.npy").exists()
    assert sorted(p.name for p in dest.iterdir()) == sorted([*info.files, "model.json"])
    assert [p.name for p in dest.parent.iterdir() if p.name.startswith(".")] == []  # no staging left


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
    assert load_model_info(tmp_path / "out").encoder_precisions == ["fp32", "fp16", "int8", "q8"]


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
    assert load_model_info(dest).encoder_precisions == ["fp32", "q8"]


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

"""Convert an official Hugging Face checkpoint folder into a model folder (README.md, "Convert a checkpoint").

Everything is written beside the destination under temporary names and moved into place; model.json is
written last, so an interrupted conversion never leaves a folder that claims files it does not have.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import onnx

from . import __version__
from .encoder_export import build_backend, build_frontend, quantize_int8
from .errors import Qwen3ASRError
from .files import write_json_atomic
from .gguf_export import (
    DECODER_QUANTS,
    TOKENIZER_FILE,
    decoder_file,
    quantize_gguf,
    write_embeddings,
    write_gguf,
    write_tokenizer,
)
from .hf_checkpoint import Checkpoint, load_checkpoint
from .mel import MelConfig
from .model_folder import (
    ENCODER_PRECISIONS,
    FORMAT,
    FORMAT_VERSION,
    backend_file,
    edge_digest,
    folder_is_outdated,
    frontend_file,
    load_model_info,
    sha256_of,
)

_HUB_SNAPSHOT = re.compile(
    r"models--(?P<org>[^/\\]+?)--(?P<name>[^/\\]+)[/\\]snapshots[/\\](?P<rev>[0-9a-f]{7,})"
)


def _source_of(folder: Path, repo: str | None, revision: str | None) -> dict:
    match = _HUB_SNAPSHOT.search(str(folder.resolve()))
    if match and repo is None:
        repo = f"{match['org']}/{match['name']}"
    if match and revision is None:
        revision = match["rev"]
    return {"repo": repo, "revision": revision, "folder": str(folder.resolve())}


def _mel_config(ckpt: Checkpoint) -> MelConfig:
    pre = ckpt.folder / "preprocessor_config.json"
    base = MelConfig(num_mel_bins=ckpt.audio.num_mel_bins)
    if not pre.exists():
        return base
    p = json.loads(pre.read_text(encoding="utf-8"))
    return dataclasses.replace(
        base,
        sampling_rate=int(p.get("sampling_rate", base.sampling_rate)),
        n_fft=int(p.get("n_fft", base.n_fft)),
        hop_length=int(p.get("hop_length", base.hop_length)),
        num_mel_bins=int(p.get("feature_size", base.num_mel_bins)),
    )


def _save_onnx(model: onnx.ModelProto, path: Path) -> None:
    """Graph in `path`, weights beside it in `path.data` (into a staging folder, so no temporary name is
    needed): onnxruntime loads external weights about twice as fast, and no 2 GB protobuf limit applies."""
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=path.name + ".data",
        size_threshold=1024,
    )


def convert(
    src: Path | str,
    dest: Path | str,
    encoder_precisions: Iterable[str] = ("fp32", "q8"),
    decoder_quants: Iterable[str] = ("auto",),
    repo: str | None = None,
    revision: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Convert checkpoint `src` into model folder `dest`; returns `dest`.

    An existing model folder at `dest` from the same checkpoint is updated (new precisions added); any other
    non-empty folder is refused, so conversion never clobbers unrelated files. The decoder type "auto" is
    this machine's CPU default: bf16 where the CPU has bf16 dot products, else q8_0.
    """
    src, dest = Path(src), Path(dest)
    say = progress or (lambda _msg: None)
    precisions = list(dict.fromkeys(encoder_precisions))
    quants = list(dict.fromkeys(_resolve_quant(q) for q in decoder_quants))
    for q in quants:
        if q not in DECODER_QUANTS:
            raise Qwen3ASRError(
                f"unknown decoder quantization {q!r}; choose from {', '.join(DECODER_QUANTS)}"
            )
    for p in precisions:
        if p not in ENCODER_PRECISIONS:
            raise Qwen3ASRError(
                f"unknown encoder precision {p!r}; choose from {', '.join(ENCODER_PRECISIONS)}"
            )
    ckpt = load_checkpoint(src)
    files: dict[str, dict] = {}
    # An aligner folder of ours in the layout this version no longer reads (model_folder.is_outdated) is
    # replaced whole, with the precisions and types it had, at the end in one swap.
    replacing = dest.exists() and folder_is_outdated(dest)
    if replacing:
        if ckpt.kind != "aligner":
            raise Qwen3ASRError(f"{dest}: holds a different model; choose another destination")
        old_files = json.loads((dest / "model.json").read_text(encoding="utf-8")).get("files", {})
        precisions += [p for p in ENCODER_PRECISIONS if frontend_file(p) in old_files and p not in precisions]
        quants += [q for q in DECODER_QUANTS if decoder_file(q) in old_files and q not in quants]
    if dest.exists() and any(dest.iterdir()) and not replacing:
        if not (dest / "model.json").exists():
            raise Qwen3ASRError(
                f"{dest}: exists and is not a model folder; choose an empty or new destination"
            )
        old = load_model_info(dest)
        if dataclasses.asdict(old.audio) != dataclasses.asdict(ckpt.audio) or old.kind != ckpt.kind:
            raise Qwen3ASRError(f"{dest}: holds a different model; choose another destination")
        files = dict(old.files)
    updating = bool(files)
    dest.parent.mkdir(parents=True, exist_ok=True)
    _check_space(dest if updating else dest.parent, space_needed(ckpt, precisions, quants))
    # Work in a staging folder: beside dest for a new folder (renamed into place at the end), inside dest
    # when adding to an existing one. An interruption removes the staging folder and nothing else.
    dest.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest if updating else dest.parent))
    umask = os.umask(0)
    os.umask(umask)
    stage.chmod(0o777 & ~umask)
    try:
        _write_encoders(ckpt, stage, precisions, say)
        _write_decoders(ckpt, stage, quants, say)
        if ckpt.kind == "aligner":  # its decoder has no tokenizer and takes embeddings (gguf_export notes)
            say(TOKENIZER_FILE)
            write_tokenizer(ckpt, stage / TOKENIZER_FILE)
            say("input embeddings")
            write_embeddings(ckpt, stage)
        for name in sorted(p.name for p in stage.iterdir()):
            files[name] = {
                "bytes": (stage / name).stat().st_size,
                "sha256": sha256_of(stage / name),
                "edges_sha256": edge_digest(stage / name),
            }
        write_json_atomic(stage / "model.json", _model_json(ckpt, src, repo, revision, files))
        if updating:
            for item in stage.iterdir():
                if item.name != "model.json":
                    os.replace(item, dest / item.name)
            os.replace(stage / "model.json", dest / "model.json")
            stage.rmdir()
        elif replacing:
            old_folder = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
            os.replace(dest, old_folder / dest.name)
            try:
                os.replace(stage, dest)
            except BaseException:
                os.replace(old_folder / dest.name, dest)  # the old folder back as it was
                old_folder.rmdir()
                raise
            shutil.rmtree(old_folder, ignore_errors=True)
            if old_folder.exists():
                say(f"could not remove the old folder {old_folder}; delete it yourself")
        else:
            if dest.exists():
                dest.rmdir()  # empty, checked above
            os.replace(stage, dest)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    say(f"wrote {dest / 'model.json'}")
    return dest


def _write_encoders(ckpt: Checkpoint, out: Path, precisions: list[str], say: Callable[[str], None]) -> None:
    """The two encoder graphs per precision; int8 is quantized from fp32 graphs (kept only if asked for)."""
    for precision in precisions:
        if precision == "int8":
            continue
        dtype = np.float16 if precision == "fp16" else np.float32
        bits = 8 if precision == "q8" else None  # 8-bit weight blocks, float32 activations
        say(f"encoder frontend ({precision})")
        _save_onnx(build_frontend(ckpt, dtype, bits), out / frontend_file(precision))
        say(f"encoder backend ({precision})")
        _save_onnx(build_backend(ckpt, dtype, bits), out / backend_file(precision))
    if "int8" in precisions:
        with tempfile.TemporaryDirectory(dir=out, prefix=".int8-") as tmp:
            for name_of, build in ((frontend_file, build_frontend), (backend_file, build_backend)):
                fp32 = out / name_of("fp32")
                if "fp32" not in precisions:
                    fp32 = Path(tmp) / name_of("fp32")
                    _save_onnx(build(ckpt, np.float32), fp32)
                say(f"{name_of('int8')} (int8 weights)")
                quantize_int8(fp32, out / name_of("int8"))


# Bytes per weight of each output (GGUF block formats: q8_0 34 bytes per 32 weights, q6_k 210 per 256, q4_k
# (Q4_K_M, some tensors q6_k) about 4.8 bits), for the free-space check.
_ENCODER_BYTES = {"fp32": 4.0, "fp16": 2.0, "int8": 1.0, "q8": 1.125}
_DECODER_BYTES = {"f32": 4.0, "f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32, "q6_k": 210 / 256, "q4_k": 0.6}


def space_needed(ckpt: Checkpoint, precisions: list[str], quants: list[str]) -> int:
    """Bytes a conversion writes at its peak: every output plus the f32 files it stages (the f32 GGUF the
    quantizer reads, about 7 GB at 1.7B; fp32 graphs for int8)."""
    store = ckpt.tensors
    audio = text = 0
    for name in store.keys():  # noqa: SIM118 (a TensorStore, not a dict)
        n = int(np.prod(store.shape(name)))
        if "audio_tower" in name:
            audio += n
        else:
            text += n
    total = sum(_ENCODER_BYTES[p] * audio for p in precisions)
    if "int8" in precisions and "fp32" not in precisions:
        total += 4.0 * audio
    total += sum(_DECODER_BYTES[q] * text for q in quants)
    if any(q not in ("f32", "f16") for q in quants) and "f32" not in quants:
        total += 4.0 * text
    if ckpt.kind == "aligner":  # its input embedding table, at most f32
        total += 4.0 * ckpt.text.vocab_size * ckpt.text.hidden_size
    return int(total)


def _check_space(folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if free < needed * 1.05 + (64 << 20):
        raise Qwen3ASRError(
            f"{folder}: converting needs about {needed / 1e9:.1f} GB free here (the outputs and the f32 files "
            f"staged for quantization), and {free / 1e9:.1f} GB is free; free some space or choose another "
            "destination"
        )


def _resolve_quant(quant: str) -> str:
    if quant == "auto":
        from .decoder import preferred_quant

        return preferred_quant()
    return quant


def _write_decoders(ckpt: Checkpoint, out: Path, quants: list[str], say: Callable[[str], None]) -> None:
    """The text model as GGUF per quantization; bf16, q8_0, q6_k and q4_k are quantized from an f32 file."""
    for quant in quants:
        if quant in ("f32", "f16"):
            say(f"{decoder_file(quant)}")
            write_gguf(ckpt, out / decoder_file(quant), quant)
    quantized = [q for q in quants if q not in ("f32", "f16")]
    if quantized:
        with tempfile.TemporaryDirectory(dir=out, prefix=".gguf-") as tmp:
            f32 = out / decoder_file("f32")
            if "f32" not in quants:
                f32 = Path(tmp) / decoder_file("f32")
                write_gguf(ckpt, f32, "f32")
            for quant in quantized:
                say(f"{decoder_file(quant)} (llama.cpp quantizer)")
                quantize_gguf(f32, out / decoder_file(quant), quant, quantize_output=ckpt.kind != "aligner")


def _model_json(ckpt: Checkpoint, src: Path, repo: str | None, revision: str | None, files: dict) -> dict:
    audio = dataclasses.asdict(ckpt.audio)
    audio.update(
        chunk_frames=ckpt.audio.chunk_frames,
        tokens_per_chunk=ckpt.audio.tokens_per_chunk,
        window_tokens=ckpt.audio.window_tokens,
    )
    info = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": ckpt.kind,
        "created_by": f"qwen3asr-plugin {__version__}",
        "source": _source_of(src, repo, revision),
        "audio": audio,
        "text": dataclasses.asdict(ckpt.text),
        "mel": _mel_config(ckpt).to_dict(),
        "tokens": ckpt.token_ids,
        "eos_token_ids": list(ckpt.eos_token_ids),
        "languages": list(ckpt.languages),
        "files": dict(sorted(files.items())),
    }
    if ckpt.kind == "aligner":
        info["aligner"] = {
            "classify_num": ckpt.classify_num,
            "timestamp_segment_ms": ckpt.timestamp_segment_ms,
            "embeddings": next(n for n in files if n.startswith("token_embd.")),
        }
    return info

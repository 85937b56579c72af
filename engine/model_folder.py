"""The converted model folder: model.json and the files it lists (README.md, "Convert a checkpoint").

model.json is the one place the runtime reads dims, token ids and mel parameters from.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelError
from .hf_checkpoint import AudioDims, TextDims
from .mel import MelConfig

FORMAT = "qwen3asr-plugin/model"
# 2: the aligner's decoder holds its class head and takes its inputs as embeddings (engine/gguf_export.py);
# aligner folders of version 1 (head beside an embedding-mode decoder) are converted again.
FORMAT_VERSION = 2
ENCODER_PRECISIONS = ("fp32", "fp16", "int8", "q8")


def frontend_file(precision: str) -> str:
    return f"encoder_frontend.{precision}.onnx"


def backend_file(precision: str) -> str:
    return f"encoder_backend.{precision}.onnx"


def sha256_of(path: Path, block_bytes: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(block_bytes):
            digest.update(block)
    return digest.hexdigest()


EDGE_BYTES = 1 << 20


def edge_digest(path: Path) -> str:
    """sha256 of a file's first and last MiB (with its size): a cheap check run at every load, which
    catches truncation, padding and damage at either end without reading gigabytes."""
    digest = hashlib.sha256()
    size = path.stat().st_size
    digest.update(str(size).encode())
    with open(path, "rb") as f:
        digest.update(f.read(EDGE_BYTES))
        if size > EDGE_BYTES:
            f.seek(max(EDGE_BYTES, size - EDGE_BYTES))
            digest.update(f.read(EDGE_BYTES))
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelInfo:
    """A converted model folder as described by its model.json."""

    folder: Path
    kind: str
    audio: AudioDims
    text: TextDims
    mel: MelConfig
    token_ids: dict[str, int]
    eos_token_ids: tuple[int, ...]
    languages: tuple[str, ...]
    files: dict[str, dict]
    source: dict
    raw: dict

    @property
    def encoder_precisions(self) -> list[str]:
        return [
            p for p in ENCODER_PRECISIONS if frontend_file(p) in self.files and backend_file(p) in self.files
        ]

    @property
    def decoder_quants(self) -> list[str]:
        from .gguf_export import DECODER_QUANTS, decoder_file

        return [q for q in DECODER_QUANTS if decoder_file(q) in self.files]

    def path(self, name: str) -> Path:
        """The path of a listed file, checked to exist with the size model.json records."""
        entry = self.files.get(name)
        if entry is None:
            raise ModelError(f"{self.folder}: model.json lists no {name}; run `qwen3asr convert` with it")
        path = self.folder / name
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise ModelError(
                f"{path}: missing; convert the model again (`qwen3asr convert SRC {self.folder}`)"
            ) from None
        if size != entry["bytes"]:
            raise ModelError(
                f"{path}: {size} bytes, expected {entry['bytes']} (truncated or replaced); "
                f"convert the model again (`qwen3asr convert SRC {self.folder}`)"
            )
        if "edges_sha256" in entry and edge_digest(path) != entry["edges_sha256"]:
            raise ModelError(
                f"{path}: corrupt (checksum of its ends differs); convert the model again "
                f"(`qwen3asr convert SRC {self.folder}`)"
            )
        return path


def is_outdated(raw: dict) -> bool:
    """A folder this version reads only after converting again (see FORMAT_VERSION)."""
    return (
        raw.get("format") == FORMAT and raw.get("kind") == "aligner" and int(raw.get("format_version", 0)) < 2
    )


def folder_is_outdated(folder: Path) -> bool:
    try:
        raw = json.loads((Path(folder) / "model.json").read_text(encoding="utf-8"))
        return isinstance(raw, dict) and is_outdated(raw)
    except (OSError, ValueError, TypeError):
        return False


def load_model_info(folder: Path | str) -> ModelInfo:
    """Read and validate `folder`/model.json."""
    folder = Path(folder)
    path = folder / "model.json"
    if not path.exists():
        hint = (
            " (this is a Hugging Face checkpoint: run `qwen3asr convert` on it)"
            if (folder / "config.json").exists()
            else ""
        )
        raise ModelError(f"{folder}: no model.json; not a converted model folder{hint}")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable ({exc}); convert the model again") from exc
    if raw.get("format") != FORMAT:
        raise ModelError(f"{path}: not a qwen3asr-plugin model description")
    if int(raw.get("format_version", 0)) > FORMAT_VERSION:
        raise ModelError(
            f"{path}: format version {raw['format_version']} is newer than this qwen3asr-plugin understands "
            f"({FORMAT_VERSION}); upgrade with `pip install -U qwen3asr-plugin`"
        )
    if is_outdated(raw):
        raise ModelError(
            f"{folder}: a forced aligner converted by an older qwen3asr-plugin; convert it again "
            f"(`qwen3asr convert SRC {folder}`, or `qwen3asr models pull NAME` for a preset)"
        )
    try:
        audio = AudioDims(**{k: raw["audio"][k] for k in AudioDims.__dataclass_fields__})
        text = TextDims(**{k: raw["text"][k] for k in TextDims.__dataclass_fields__})
    except KeyError as exc:
        raise ModelError(f"{path}: missing field {exc}; convert the model again") from None
    return ModelInfo(
        folder=folder,
        kind=raw["kind"],
        audio=audio,
        text=text,
        mel=MelConfig.from_dict(raw.get("mel", {})),
        token_ids={k: int(v) for k, v in raw["tokens"].items()},
        eos_token_ids=tuple(raw.get("eos_token_ids", [])),
        languages=tuple(raw.get("languages", [])),
        files=raw.get("files", {}),
        source=raw.get("source", {}),
        raw=raw,
    )

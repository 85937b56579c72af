"""Read safetensors files into NumPy without torch (bf16 included, as the official checkpoints ship).

The format is an 8-byte little-endian header length, a JSON header, then raw little-endian tensor bytes.
Reading through a memory map keeps conversion of large checkpoints cheap in RAM.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from .errors import CheckpointError

_NUMPY_DTYPES = {
    "F32": np.float32,
    "F16": np.float16,
    "F64": np.float64,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}


def bf16_bits_to_float32(bits: np.ndarray) -> np.ndarray:
    """Widen bfloat16 values stored as uint16 to float32 (exact)."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


class SafetensorsFile:
    """One .safetensors file, tensors decoded lazily to NumPy."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            with open(self.path, "rb") as f:
                (header_len,) = struct.unpack("<Q", f.read(8))
                if header_len <= 0 or header_len > 100_000_000:
                    raise ValueError("bad header length")
                header = json.loads(f.read(header_len))
        except (OSError, ValueError, struct.error) as exc:
            raise CheckpointError(
                f"{self.path}: not a readable safetensors file ({exc}); download the checkpoint again"
            ) from exc
        self._data_start = 8 + header_len
        self.metadata = header.pop("__metadata__", {}) or {}
        self._entries = header
        self._mmap = np.memmap(self.path, dtype=np.uint8, mode="r")

    def keys(self) -> list[str]:
        return list(self._entries)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._entries[name]["shape"])

    def dtype(self, name: str) -> str:
        return self._entries[name]["dtype"]

    def get(self, name: str, dtype=np.float32) -> np.ndarray:
        """The tensor `name` as a NumPy array of `dtype` (float32 by default)."""
        entry = self._entries[name]
        start, end = entry["data_offsets"]
        raw = self._mmap[self._data_start + start : self._data_start + end]
        shape = tuple(entry["shape"])
        kind = entry["dtype"]
        if kind == "BF16":
            array = bf16_bits_to_float32(raw.view("<u2")).reshape(shape)
        elif kind in _NUMPY_DTYPES:
            array = raw.view(np.dtype(_NUMPY_DTYPES[kind]).newbyteorder("<")).reshape(shape)
        else:
            raise CheckpointError(f"{self.path}: tensor {name} has unsupported dtype {kind}")
        return np.asarray(array, dtype=dtype)


class TensorStore:
    """All tensors of a checkpoint folder: one model.safetensors or shards listed in an index."""

    def __init__(self, folder: Path):
        folder = Path(folder)
        index = folder / "model.safetensors.index.json"
        single = folder / "model.safetensors"
        self._where: dict[str, SafetensorsFile] = {}
        if index.exists():
            weight_map = json.loads(index.read_text())["weight_map"]
            files = {name: SafetensorsFile(folder / name) for name in sorted(set(weight_map.values()))}
            self._where = {key: files[name] for key, name in weight_map.items()}
        elif single.exists():
            file = SafetensorsFile(single)
            self._where = dict.fromkeys(file.keys(), file)
        else:
            raise CheckpointError(
                f"{folder}: no model.safetensors; point at a Hugging Face checkpoint folder "
                "(for example a download of Qwen/Qwen3-ASR-0.6B)"
            )

    def __contains__(self, name: str) -> bool:
        return name in self._where

    def keys(self) -> list[str]:
        return list(self._where)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._file(name).shape(name)

    def get(self, name: str, dtype=np.float32) -> np.ndarray:
        return self._file(name).get(name, dtype)

    def _file(self, name: str) -> SafetensorsFile:
        try:
            return self._where[name]
        except KeyError:
            raise CheckpointError(
                f"checkpoint lacks tensor {name}; is this a Qwen3-ASR or Qwen3-ForcedAligner checkpoint?"
            ) from None

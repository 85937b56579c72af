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


def float32_to_bf16_bits(values: np.ndarray) -> np.ndarray:
    """Round float32 to bfloat16 (round to nearest, ties to even), returned as uint16 bits."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounding = ((bits >> 16) & 1) + np.uint32(0x7FFF)
    return ((bits + rounding) >> 16).astype(np.uint16)


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


def write_safetensors(path: Path, tensors: dict[str, tuple[str, np.ndarray]], metadata: dict | None = None):
    """Write tensors given as name -> (safetensors dtype, array holding those bytes) to `path`."""
    header: dict = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    offset = 0
    blobs = []
    for name, (kind, array) in tensors.items():
        blob = np.ascontiguousarray(array)
        size = blob.nbytes
        header[name] = {"dtype": kind, "shape": list(array.shape), "data_offsets": [offset, offset + size]}
        blobs.append(blob)
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the data section starts 8-byte aligned, as the reference writer does
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for blob in blobs:
            f.write(blob.tobytes(order="C"))

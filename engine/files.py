"""Atomic files: written under a temporary name beside the destination and moved into place, so a reader never
sees half a file, an interruption leaves none, and an existing file is replaced only when asked."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .errors import Qwen3ASRError


def temporary_beside(path: Path) -> Path:
    """A new empty file next to `path` (same filesystem, so os.replace is atomic), with normal permissions."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return Path(tmp)


def write_atomic(path: Path, text: str, overwrite: bool = False) -> None:
    """Write `text` to `path` through a temporary file; refuses to replace a file unless `overwrite`."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise Qwen3ASRError(f"{path}: exists; use --overwrite to replace it")
    try:
        tmp = temporary_beside(path)
    except OSError as exc:
        raise Qwen3ASRError(
            f"{path}: cannot write here ({exc.strerror}); choose another output folder"
        ) from exc
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # fails if the file appeared meanwhile: never a silent overwrite
            except FileExistsError:
                raise Qwen3ASRError(f"{path}: exists; use --overwrite to replace it") from None
            except OSError:  # a filesystem without hard links
                os.replace(tmp, path)
    except OSError as exc:  # disk full, a folder in the way, ...
        raise Qwen3ASRError(
            f"{path}: cannot write ({exc.strerror}); free some space or choose another place"
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON to a temporary file beside `path` and move it into place (replacing it)."""
    write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n", overwrite=True)

"""Model names and folders: presets resolve to converted folders in the user's data directory.

`pull` downloads an official checkpoint with huggingface_hub (HF_ENDPOINT is honoured, as is the `endpoint`
argument) and converts it there.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from .errors import ModelError
from .model_folder import folder_is_outdated, load_model_info

DEFAULT_MODEL = "qwen3-asr-0.6b"
# q8 is what the CPU runs by default (engine/encoder.py); fp32 is the exact one, and GPUs take it.
DEFAULT_ENCODER_PRECISIONS = ("fp32", "q8")
DEFAULT_DECODER_QUANTS = ("auto",)  # bf16 on CPUs with bf16 dot products, else q8_0


def presets() -> dict[str, dict]:
    from ..models import load_presets

    return load_presets()


def preset_aligner(model: str | os.PathLike | None) -> str | None:
    """The aligner preset that goes with a model preset (None for a model folder or a preset without one)."""
    return presets().get(str(model or DEFAULT_MODEL), {}).get("aligner")


def models_dir() -> Path:
    """Where converted models live: $QWEN3ASR_MODELS_DIR, else the platform's user data folder."""
    env = os.environ.get("QWEN3ASR_MODELS_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("qwen3asr-plugin", appauthor=False)) / "models"


def model_path(name: str) -> Path:
    return models_dir() / name


def is_installed(name: str) -> bool:
    """Converted and readable by this version (a preset in an older layout is pulled and converted again:
    huggingface_hub's cache keeps the download)."""
    folder = model_path(name)
    return (folder / "model.json").exists() and not folder_is_outdated(folder)


def resolve_model(
    spec: str | os.PathLike | None, pull_missing: bool = True, progress: Callable[[str], None] | None = None
) -> Path:
    """A model folder for a preset name or a path; pulls a missing preset when `pull_missing`."""
    spec = spec or DEFAULT_MODEL
    path = Path(spec)
    if str(spec) not in presets():
        if (path / "model.json").exists():
            return path
        if path.exists():
            load_model_info(path)  # raises the specific error (checkpoint, not a model folder, ...)
        raise ModelError(
            f"{spec}: no such model; give a model folder or one of {', '.join(presets())} "
            "(`qwen3asr models list`)"
        )
    name = str(spec)
    if is_installed(name):
        return model_path(name)
    if not pull_missing:
        raise ModelError(f"model {name} is not installed; run `qwen3asr models pull {name}`")
    return pull(name, progress=progress)


def pull(
    name: str,
    revision: str | None = None,
    endpoint: str | None = None,
    encoder_precisions=DEFAULT_ENCODER_PRECISIONS,
    decoder_quants=DEFAULT_DECODER_QUANTS,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Download preset `name`'s checkpoint (huggingface_hub shows progress bars) and convert it."""
    from huggingface_hub import snapshot_download

    from .convert import convert

    preset = presets().get(name)
    if preset is None:
        raise ModelError(f"unknown model {name!r}; choose one of {', '.join(presets())}")
    say = progress or (lambda _m: None)
    say(f"downloading {preset['repo']}")
    try:
        folder = snapshot_download(
            preset["repo"], revision=revision, allow_patterns=preset["checkpoint_files"], endpoint=endpoint
        )
    except Exception as exc:  # network and hub errors come in many types
        raise ModelError(
            f"could not download {preset['repo']}: {str(exc).splitlines()[0]}; check the "
            "network (or HF_ENDPOINT), or download it yourself and run `qwen3asr convert`"
        ) from exc
    dest = model_path(name)
    say(f"converting into {dest}")
    return convert(
        folder,
        dest,
        encoder_precisions=encoder_precisions,
        decoder_quants=decoder_quants,
        repo=preset["repo"],
        revision=revision,
        progress=say,
    )

"""Benchmarks at the real dimensions on random weights (see README, Speed)."""

from __future__ import annotations

from pathlib import Path


def prepare_model(
    work: Path, preset: str, encoders: tuple[str, ...], decoders: tuple[str, ...]
) -> tuple[Path, Path]:
    """A random checkpoint at `preset`'s dimensions and its model folder under `work`, with the encoder
    precisions and decoder types asked for; an earlier run's folder is reused and gets only what it lacks."""
    from qwen3asr_plugin.engine.convert import convert
    from qwen3asr_plugin.engine.model_folder import load_model_info
    from tests.fixtures.checkpoint import make_checkpoint

    ckpt, model = work / f"ckpt-{preset}", work / f"model-{preset}"
    if not (ckpt / "config.json").exists():
        make_checkpoint(ckpt, preset, seed=1)
    if (model / "model.json").exists():
        have = load_model_info(model)
        encoders = tuple(p for p in encoders if p not in have.encoder_precisions)
        decoders = tuple(q for q in decoders if q not in have.decoder_quants)
    if encoders or decoders:
        convert(ckpt, model, encoder_precisions=encoders, decoder_quants=decoders)
    return ckpt, model

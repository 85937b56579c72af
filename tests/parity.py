"""Encoder parity measurement shared by the tests and the report script (`python -m tests.parity`)."""

from __future__ import annotations

import numpy as np

from qwen3asr_plugin.engine.encoder import AudioEncoder, EncoderOptions
from qwen3asr_plugin.engine.mel import log_mel
from qwen3asr_plugin.engine.model_folder import load_model_info

# Lengths in samples at 16 kHz: under 1 s; not a multiple of 100 frames; over 8 s (several 8 s windows).
LENGTHS = {"0.57s": 9_120, "4.37s": 69_920, "12.34s": 197_440}
BARS = {"fp32": 0.99999, "fp16": 0.999, "int8": 0.99, "q8": 0.9999}


def speech_like(n_samples: int, seed: int = 3) -> np.ndarray:
    """Speech-like test signal: harmonics with a moving pitch, noise, and a quiet gap."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / 16000.0
    pitch = 140 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / 16000.0
    x = sum(np.sin(k * phase) / k for k in range(1, 6)) * (0.5 + 0.5 * np.sin(2 * np.pi * 1.3 * t))
    x = 0.3 * x + 0.02 * rng.standard_normal(n_samples)
    x[n_samples // 3 : n_samples // 3 + 1600] *= 0.01
    return x.astype(np.float32)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def measure(model_dir, reference, precision: str, n_samples: int) -> dict:
    """Run our encoder and the reference on the same mel; returns cosine, max abs diff and shapes."""
    from tests.reference import reference_audio_embeddings

    info = load_model_info(model_dir)
    mel = log_mel(speech_like(n_samples), info.mel)
    ours = AudioEncoder(info, EncoderOptions(precision=precision, device="cpu")).encode(mel)
    ref = reference_audio_embeddings(reference, mel, info.audio.n_window)
    return {
        "frames": mel.shape[1],
        "tokens": ours.shape[0],
        "ref_tokens": ref.shape[0],
        "cosine": cosine(ours, ref) if ours.shape == ref.shape else float("nan"),
        "max_abs": float(np.abs(ours - ref).max()) if ours.shape == ref.shape else float("inf"),
        "ref_max_abs": float(np.abs(ref).max()),
    }


def main() -> None:
    import tempfile
    from pathlib import Path

    from qwen3asr_plugin.engine.convert import convert
    from tests.conftest import GEOMETRIES, SEED
    from tests.fixtures.checkpoint import make_checkpoint
    from tests.reference import reference_model

    with tempfile.TemporaryDirectory() as tmp:
        print(
            f"{'geometry':12} {'length':>7} {'prec':>5} {'frames':>6} {'tokens':>6} {'cosine':>12} {'max_abs':>10}"
        )
        for name, (preset, overrides) in list(GEOMETRIES.items())[:2]:
            ckpt = make_checkpoint(Path(tmp) / name, preset, seed=SEED, overrides=overrides)
            model = convert(ckpt, Path(tmp) / f"{name}-model", encoder_precisions=BARS)
            ref = reference_model(ckpt)
            for label, n in LENGTHS.items():
                for precision in BARS:
                    r = measure(model, ref, precision, n)
                    print(
                        f"{name:12} {label:>7} {precision:>5} {r['frames']:6d} {r['tokens']:6d} "
                        f"{r['cosine']:12.8f} {r['max_abs']:10.2e}"
                    )


def transcribe_chunk(
    pipeline, audio: np.ndarray, language, context: str, max_new_tokens: int, temperatures=None
):
    """One chunk through an AsrPipeline's mel, encoder and decoder (its ChunkResult)."""
    return pipeline.transcribe_chunks([audio], language, context, [max_new_tokens], temperatures)[0]


def transcribe_array(pipeline, audio: np.ndarray, options):
    """Segments and info for an in-memory 16 kHz array."""
    return pipeline.transcribe_stream([audio], options, duration=audio.size / 16000)


if __name__ == "__main__":
    main()

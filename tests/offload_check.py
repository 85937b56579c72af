"""Run the decoder or the aligner once in this process, with the llama.cpp library the environment names
(LLAMA_CPP_LIB_PATH), and save what tests/test_gpu_offload.py compares: first-position logits and greedy
tokens of one chunk, or an aligner's slot classes; also the GPUs llama.cpp saw and what it logged about
offloading. A library is loaded once per process, so the GPU and CPU runs are separate processes.

    python -m tests.offload_check asr MODEL OUT.npz --quant f32 --kv-f32 [--gpu-layers -1]
    python -m tests.offload_check aligner MODEL OUT.npz --quant f32 [--gpu-layers -1]
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

from qwen3asr_plugin.engine.decoder import DecoderOptions
from qwen3asr_plugin.engine.encoder import EncoderOptions
from qwen3asr_plugin.engine.llama_runtime import gpu_devices, library_path
from qwen3asr_plugin.engine.model_folder import load_model_info
from tests.parity import speech_like

ASR_AUDIO = speech_like(16_000 * 3 + 1234)
ALIGNER_AUDIO = speech_like(16_000 * 6 + 500)
ALIGNER_TEXT = "Hello, world! This is a test of the aligner; don't panic: it's 9:30 a.m."
STEPS = 32


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["asr", "aligner"])
    parser.add_argument("model")
    parser.add_argument("out")
    parser.add_argument("--quant", default="f32")
    parser.add_argument("--kv-f32", action="store_true")
    parser.add_argument("--gpu-layers", type=int, default=0)
    parser.add_argument("--device-index", type=int, default=0)
    args = parser.parse_args()
    info = load_model_info(args.model)
    decoder = DecoderOptions(
        quant=args.quant,
        kv_f32=args.kv_f32,
        gpu_layers=args.gpu_layers,
        device_index=args.device_index,
        temperatures=(0.0,),
    )
    encoder = EncoderOptions(precision="fp32", device="cpu")
    saved = {}
    if args.kind == "asr":
        from qwen3asr_plugin.engine.pipeline import AsrPipeline
        from tests.parity import transcribe_chunk

        result = transcribe_chunk(AsrPipeline(info, encoder, decoder), ASR_AUDIO, None, "", STEPS)
        saved = {"logits": result.generation.logits_first, "tokens": np.array(result.tokens)}
    else:
        from qwen3asr_plugin.engine.aligner import ForcedAligner, split_units

        aligner = ForcedAligner(info, encoder, decoder)
        saved = {"classes": aligner.slot_classes(ALIGNER_AUDIO, split_units(ALIGNER_TEXT))}
    about = {
        "library": library_path(),
        "gpus": [d.description for d in gpu_devices()],
        "lib_env": os.environ.get("LLAMA_CPP_LIB_PATH"),
    }
    np.savez(args.out, about=json.dumps(about), **saved)


if __name__ == "__main__":
    main()

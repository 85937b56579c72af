"""`qwen3asr bench`: where the time goes on this machine, stage by stage, for a model folder.

Stages: mel, encoder, decoder prefill (the prompt with the audio embeddings), decoder decode (a forced number
of tokens, so the figure does not depend on what the model says), and the aligner. Peak memory is the
process's resident maximum. Figures are from one run; compare ratios within a run.
"""

from __future__ import annotations

import resource
import sys
import time
from dataclasses import dataclass

import numpy as np

from .audio import SAMPLE_RATE
from .chunking import ChunkOptions
from .decoder import DecoderOptions, TextDecoder
from .encoder import AudioEncoder, EncoderOptions
from .floors import Machine, encoder_flops, text_flops
from .mel import log_mel, num_frames
from .model_folder import ModelInfo
from .pipeline import TranscribeOptions
from .prompt import build_asr_prompt


@dataclass
class StageTime:
    name: str
    seconds: float
    detail: str = ""
    count: int = 0  # tokens for prefill and decode, audio tokens for the encoder
    flops: float = 0.0  # matrix-product FLOPs of the stage (engine/floors.py)
    bytes_read: float = 0.0  # weight bytes the stage must read (decode)

    def floor(self, machine: Machine | None) -> float:
        """Seconds at best on `machine`; 0 when not estimated."""
        if machine is None:
            return 0.0
        return self.flops / machine.sgemm + self.bytes_read / machine.bandwidth


def peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1 << 20) if sys.platform == "darwin" else rss / 1024


def synthetic_speech(seconds: float, seed: int = 0) -> np.ndarray:
    """A speech-like test signal (harmonics with a moving pitch and pauses)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    phase = 2 * np.pi * np.cumsum(140 + 40 * np.sin(2 * np.pi * 0.7 * t)) / SAMPLE_RATE
    x = sum(np.sin(k * phase) / k for k in range(1, 6)) * (np.sin(2 * np.pi * 0.25 * t) > -0.6)
    return (0.3 * x + 0.01 * rng.standard_normal(n)).astype(np.float32)


def run_bench(
    info: ModelInfo,
    audio: np.ndarray,
    tokens: int,
    threads: int,
    encoder_precision: str | None,
    decoder_quant: str | None,
    aligner_info: ModelInfo | None = None,
    chunk_seconds: float = ChunkOptions.max_seconds,
    batch_size: int = TranscribeOptions.batch_size,
) -> list[StageTime]:
    """Time every stage over `audio` cut into chunk_seconds pieces; `tokens` decoded in all, `batch_size`
    chunks at a time as the pipeline decodes them. Each stage also gets its FLOPs (or bytes) for its floor."""
    n = int(chunk_seconds * SAMPLE_RATE)
    chunks = [audio[i : i + n] for i in range(0, audio.size, n)]
    per_chunk = max(1, tokens // len(chunks))
    stages: list[StageTime] = []

    t0 = time.perf_counter()
    mels = [log_mel(c, info.mel) for c in chunks]
    stages.append(StageTime("mel", time.perf_counter() - t0))

    t0 = time.perf_counter()
    encoder = AudioEncoder(info, EncoderOptions(precision=encoder_precision, device="cpu", threads=threads))
    loading = time.perf_counter() - t0
    t0 = time.perf_counter()
    embeddings = [encoder.encode(m) for m in mels]
    n_audio = sum(e.shape[0] for e in embeddings)
    stages.append(
        StageTime(
            "encoder", time.perf_counter() - t0, f"{encoder.precision}, {n_audio} audio tokens", n_audio
        )
    )
    stages[-1].flops = sum(encoder_flops(info.audio, m.shape[1]) for m in mels)

    t0 = time.perf_counter()

    decoder = TextDecoder(info, DecoderOptions(quant=decoder_quant, threads=threads))
    loading += time.perf_counter() - t0
    prefill = decode = 0.0
    n_prompt = prefill_flops = 0
    steps = 0
    for first in range(0, len(embeddings), max(1, batch_size)):
        group = embeddings[first : first + max(1, batch_size)]
        prompts = [build_asr_prompt(decoder.tokenize, info.token_ids, e.shape[0]) for e in group]
        t0 = time.perf_counter()
        positions, logits = decoder.prefill_batch(prompts, group, [per_chunk] * len(group))
        t1 = time.perf_counter()
        for _ in range(per_chunk):  # the pipeline's lockstep decoding, with forced lengths
            tokens = [int(np.argmax(row)) for row in logits]
            logits = decoder.step_batch(tokens, positions)
            positions = [p + 1 for p in positions]
        decode += time.perf_counter() - t1
        prefill += t1 - t0
        n_prompt += sum(p - per_chunk for p in positions)
        prefill_flops += sum(text_flops(info.text, p - per_chunk, 0, 1) for p in positions)
        steps += per_chunk
    stages.append(
        StageTime(
            "prefill",
            prefill,
            f"{decoder.quant}, {n_prompt} tokens, {n_prompt / prefill:.0f} tok/s",
            n_prompt,
            flops=prefill_flops,
        )
    )
    n_dec = per_chunk * len(chunks)
    stages.append(
        StageTime(
            "decode",
            decode,
            f"{n_dec} tokens, {n_dec / decode:.1f} tok/s, {min(batch_size, len(chunks))} at once",
            n_dec,
            # every step reads the weights once for all its chunks (the tied output layer: the whole file)
            bytes_read=steps * decoder.path.stat().st_size,
        )
    )
    # While the aligner runs, the ASR model gives back its weights where that is cheap, as in the pipeline
    # (engine/pipeline.py: the ASR model and the aligner take turns), so the peak memory is the job's.
    if aligner_info is not None:
        from .aligner import ForcedAligner, split_units

        if decoder.weights_releasable:
            decoder.release_weights()
        else:
            decoder.release_context()
        if encoder.releasable:
            encoder.release()

        t0 = time.perf_counter()
        aligner = ForcedAligner(
            aligner_info,
            EncoderOptions(precision=encoder_precision, device="cpu", threads=threads),
            DecoderOptions(quant=decoder_quant, threads=threads, context_tokens=4096),
        )
        loading += time.perf_counter() - t0
        words_per_chunk = max(1, per_chunk * 2 // 3)  # about 1.5 tokens per word
        text = " ".join(["word"] * words_per_chunk)
        t0 = time.perf_counter()
        for c in chunks:
            aligner.slot_classes(c, split_units(text))
        seconds = time.perf_counter() - t0
        flops = 0.0
        for c in chunks:  # what was computed, counted after the timing
            units = split_units(text)
            n_frames = num_frames(c.size, aligner_info.mel)
            n_audio = aligner.encoder.num_tokens(n_frames)
            prefix, text_part = aligner.input_ids(n_audio, units)
            flops += encoder_flops(aligner_info.audio, n_frames)
            slots = 2 * len(units)  # two timestamp slots per unit pass through the class head
            flops += text_flops(
                aligner_info.text, len(prefix) + n_audio + len(text_part), 0, slots, aligner.classes
            )
        stages.append(StageTime("align", seconds, f"{words_per_chunk * len(chunks)} words", flops=flops))
    decoder.close()
    # Making the sessions and loading the weights (from a warm disk cache, as a second run finds them).
    stages.append(
        StageTime("load", loading, "encoder sessions, decoder" + (", aligner" if aligner_info else ""))
    )
    return stages


def report(
    stages: list[StageTime],
    audio_seconds: float,
    machine: Machine | None = None,
    peak_mb: float | None = None,
) -> str:
    """The table; `peak_mb` is the peak memory to show (taken before measuring the machine, whose 512 MiB
    probe would otherwise be the peak of a small model's run)."""
    total = sum(s.seconds for s in stages)
    lines = [f"{'stage':8} {'seconds':>8} {'share':>6} {'floor':>7} {'x floor':>7}  detail"]
    for s in stages:
        floor = s.floor(machine)
        shown = f"{floor:7.2f} {s.seconds / floor:7.1f}" if floor else f"{'':7} {'':7}"
        lines.append(f"{s.name:8} {s.seconds:8.2f} {100 * s.seconds / total:5.1f}% {shown}  {s.detail}")
    floors = sum(s.floor(machine) for s in stages)
    peak = peak_rss_mb() if peak_mb is None else peak_mb
    lines.append(
        f"{'total':8} {total:8.2f}        {f'{floors:7.2f}' if floors else '':7}          RTF "
        f"{total / audio_seconds:.3f} ({audio_seconds:.0f} s of audio); peak memory {peak:.0f} MB"
    )
    if machine:
        lines.append(
            f"floors: matrix products at {machine.sgemm / 1e9:.0f} GFLOP/s (ONNX Runtime f32, measured here), "
            f"weights read at {machine.bandwidth / 1e9:.1f} GB/s (measured here); engine/floors.py"
        )
    return "\n".join(lines)

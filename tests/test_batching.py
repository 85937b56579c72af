"""Chunks decoded together (one llama.cpp sequence each, in lockstep) give what one-at-a-time decoding gives."""

from __future__ import annotations

import numpy as np
import pytest

from qwen3asr_plugin.engine.chunking import ChunkOptions
from qwen3asr_plugin.engine.decoder import DecoderOptions, Generation
from qwen3asr_plugin.engine.encoder import EncoderOptions
from qwen3asr_plugin.engine.model_folder import load_model_info
from qwen3asr_plugin.engine.pipeline import AsrPipeline, TranscribeOptions, _groups
from tests.parity import speech_like, transcribe_chunk

# Different lengths, so the sequences have different prompt lengths and end at different steps.
AUDIOS = [speech_like(16_000 * 3 + 1234, seed=3), speech_like(16_000 * 7, seed=4), speech_like(9_000, seed=5)]


def make_pipeline(folder, quant: str, kv_f32: bool, temperatures=(0.0,)) -> AsrPipeline:
    return AsrPipeline(
        load_model_info(folder),
        EncoderOptions(precision="fp32", device="cpu"),
        DecoderOptions(quant=quant, kv_f32=kv_f32, temperatures=temperatures),
    )


@pytest.mark.parametrize(("quant", "kv_f32"), [("f32", True), ("q8_0", False), ("bf16", False)])
def test_batch_equals_one_chunk_at_a_time(models, bf16_models, quant, kv_f32):
    p = make_pipeline((bf16_models if quant == "bf16" else models)("tiny"), quant, kv_f32)
    budgets = [40, 40, 40]
    solo = [transcribe_chunk(p, a, None, "", 40) for a in AUDIOS]
    batched = p.transcribe_chunks(AUDIOS, None, "", budgets)
    assert p.decoder.n_seq >= 3  # it really ran as three sequences
    for s, b in zip(solo, batched, strict=True):
        assert b.prompt.token_ids() == s.prompt.token_ids()
        np.testing.assert_allclose(b.generation.logits_first, s.generation.logits_first, atol=2e-4)
        assert b.tokens == s.tokens
        assert b.generation.finished == s.generation.finished
    # A single chunk afterwards still gets a full-size context.
    again = transcribe_chunk(p, AUDIOS[0], None, "", 40)
    assert again.tokens == solo[0].tokens


def test_fallback_inside_a_batch(tmp_path):
    """A fixture seed whose greedy output loops: a looping sequence in a batch is retried alone with the
    temperature fallback, exactly as it is when decoded on its own, and does not disturb the others."""
    from qwen3asr_plugin.engine.convert import convert
    from tests.fixtures.checkpoint import make_checkpoint

    ckpt = make_checkpoint(tmp_path / "loopy", "tiny", seed=7)
    folder = convert(ckpt, tmp_path / "m", decoder_quants=["f32"])
    p = make_pipeline(folder, "f32", True, temperatures=(0.0, 0.2, 0.4))
    audios = [AUDIOS[0], AUDIOS[1], AUDIOS[0]]
    solo = [transcribe_chunk(p, a, None, "", 200) for a in audios]
    assert solo[0].generation.attempts >= 2  # the loop really triggered the fallback
    batched = p.transcribe_chunks(audios, None, "", [200, 200, 200])
    for s, b in zip(solo, batched, strict=True):
        gs, gb = s.generation, b.generation
        assert (gb.tokens, gb.attempts, gb.temperature, gb.finished) == (
            gs.tokens,
            gs.attempts,
            gs.temperature,
            gs.finished,
        )


def test_groups_are_lazy_and_sized():
    seen = []

    def items():
        for i in range(8):
            seen.append(i)
            yield i

    it = _groups(items(), 1, 3)
    assert next(it) == [0] and seen == [0]  # the first group does not wait for more input
    assert next(it) == [1, 2, 3]
    assert list(it) == [[4, 5, 6], [7]]
    assert [len(g) for g in _groups(range(5), 3, 3)] == [3, 2]


def fake(p, text: str) -> Generation:
    tokens = (
        p.decoder.tokenize("language English") + [p.info.token_ids["asr_text"]] + p.decoder.tokenize(text)
    )
    return Generation(tokens=tokens, finished=True, looped=False, temperature=0.0)


def test_pipeline_groups_chunks_and_keeps_their_order(models, monkeypatch):
    p = make_pipeline(models("tiny"), "f32", True)
    sizes: list[int] = []
    counter = iter(range(100))

    def generate_batch(prompts, audios, budgets, temperatures=None):
        sizes.append(len(prompts))
        assert len(budgets) == len(prompts)
        return [fake(p, f" chunk {next(counter)}") for _ in prompts]

    monkeypatch.setattr(p.decoder, "generate_batch", generate_batch)
    audio = np.concatenate(
        [speech_like(16_000 * 10, seed=s) for s in range(5)]
    )  # about five chunks of up to 10 s
    blocks_read = []

    def blocks():
        for i in range(0, audio.size, 16_000):
            blocks_read.append(i)
            yield audio[i : i + 16_000]

    options = TranscribeOptions(chunking=ChunkOptions(max_seconds=10), batch_size=3, first_batch_size=1)
    segments, _ = p.transcribe_stream(blocks(), options)
    first = next(segments)
    assert first.text == "chunk 0" and sizes == [1]
    assert len(blocks_read) <= 21  # the first segment came after about one chunk of input, not three
    rest = list(segments)
    assert sizes[:2] == [1, 3] and all(n <= 3 for n in sizes) and sum(sizes) == 1 + len(rest)
    assert [s.text for s in [first, *rest]] == [f"chunk {i}" for i in range(sum(sizes))]
    starts = [s.start for s in [first, *rest]]
    assert starts == sorted(starts) and starts[0] == 0.0 and starts[-1] >= 35.0


def test_the_kv_cache_is_given_back_while_the_aligner_runs(models):
    """With an aligner, the decoder's llama.cpp context (KV cache and compute buffers: ~300 MB for four 30 s
    chunks at 0.6B) is freed after each batch, since the aligner then runs (the whole job's peak: README
    Speed), and made again for the next batch: the text is the same as with it kept."""
    from qwen3asr_plugin.engine.aligner import ForcedAligner

    audio = np.concatenate([speech_like(16_000 * 9, seed=s) for s in range(4)])
    options = TranscribeOptions(chunking=ChunkOptions(max_seconds=10), batch_size=2, first_batch_size=1)
    kept = make_pipeline(models("tiny"), "f32", True)
    freed = make_pipeline(models("tiny"), "f32", True)
    freed.aligner = ForcedAligner(
        load_model_info(models("aligner-tiny")),
        EncoderOptions(precision="fp32", device="cpu"),
        DecoderOptions(quant="f32", kv_f32=True),
    )
    made = []
    make = freed.decoder._make_context
    freed.decoder._make_context = lambda *a: (made.append(a), make(*a))[1]
    with_aligner, _ = freed.transcribe_stream(iter([audio]), options)
    states = []
    segments = []
    for segment in with_aligner:
        segments.append(segment)
        states.append(freed.decoder.ctx is None)
    without, _ = kept.transcribe_stream(iter([audio]), options)
    assert [s.tokens for s in segments] == [s.tokens for s in without] and len(segments) >= 3
    assert all(states) and len(made) >= 3  # freed after every batch, made again for the next
    assert kept.decoder.ctx is not None
    assert freed.aligner.decoder.ctx is None  # the aligner's too, once a batch's segments are timed


def test_the_asr_model_and_the_aligner_take_turns_with_their_weights(models, monkeypatch):
    """On the CPU, the ASR model and the aligner never hold their weights at once: the aligner's decoder is
    unmapped and its encoder sessions closed while a batch decodes, the ASR model's while the aligner times
    that batch, each made again on its next turn (the page cache makes that cheap). The job's peak then holds
    one model's weights (README Speed). Text and word times are those of both kept loaded."""
    from qwen3asr_plugin.engine.aligner import ForcedAligner
    from qwen3asr_plugin.engine.decoder import TextDecoder
    from qwen3asr_plugin.engine.encoder import AudioEncoder

    audio = np.concatenate([speech_like(16_000 * 9, seed=s) for s in range(4)])
    options = TranscribeOptions(chunking=ChunkOptions(max_seconds=10), batch_size=2, first_batch_size=1)

    def run():
        p = make_pipeline(models("tiny"), "f32", True)
        p.aligner = ForcedAligner(
            load_model_info(models("aligner-tiny")),
            EncoderOptions(precision="fp32", device="cpu"),
            DecoderOptions(quant="f32", kv_f32=True),
        )
        resident = []  # (who runs, is the other's model mapped)
        generate, classes = p.decoder.generate_batch, p.aligner.slot_classes
        p.decoder.generate_batch = lambda *a, **k: (
            resident.append(("asr", p.aligner.decoder.model is not None)),
            resident.append(("asr", p.aligner.encoder._backend is not None)),
            generate(*a, **k),
        )[2]
        p.aligner.slot_classes = lambda *a: (
            resident.append(("aligner", p.decoder.model is not None)),
            resident.append(("aligner", p.encoder._backend is not None)),
            classes(*a),
        )[2]
        segments, _ = p.transcribe_stream(iter([audio]), options)
        return list(segments), resident

    turns, resident = run()
    assert {who for who, _ in resident} == {"asr", "aligner"} and len(resident) >= 6
    assert not any(other for _, other in resident), resident  # never both mapped
    monkeypatch.setattr(TextDecoder, "weights_releasable", property(lambda self: False))
    monkeypatch.setattr(AudioEncoder, "releasable", property(lambda self: False))
    kept, resident = run()
    assert all(other for who, other in resident if who == "aligner")  # the ASR decoder stayed loaded
    assert [s.tokens for s in turns] == [s.tokens for s in kept] and len(turns) >= 3
    assert [s.words for s in turns] == [s.words for s in kept]
    assert all(s.words for s in turns)


def test_a_model_file_gone_between_turns_fails_in_one_line(models, tmp_path):
    """The ASR model's weights are mapped again on each turn, so a folder changed while a job runs is checked
    again (model.json's size and ends) and fails with the file and the fix, not with llama.cpp's crash or
    another model's output."""
    import shutil

    from qwen3asr_plugin.engine.aligner import ForcedAligner
    from qwen3asr_plugin.engine.errors import ModelError

    folder = tmp_path / "asr"
    shutil.copytree(models("tiny"), folder)
    p = AsrPipeline(
        load_model_info(folder),
        EncoderOptions(precision="fp32", device="cpu"),
        DecoderOptions(quant="f32", kv_f32=True, temperatures=(0.0,)),
        aligner=ForcedAligner(
            load_model_info(models("aligner-tiny")),
            EncoderOptions(precision="fp32", device="cpu"),
            DecoderOptions(quant="f32", kv_f32=True),
        ),
    )
    # The aligner, loaded first to check it, rests before the ASR model loads: never resident together.
    assert p.aligner.decoder.model is None and p.aligner.encoder._backend is None
    audio = np.concatenate([speech_like(16_000 * 9, seed=s) for s in range(3)])
    options = TranscribeOptions(chunking=ChunkOptions(max_seconds=10), batch_size=1, first_batch_size=1)
    segments, _ = p.transcribe_stream(iter([audio]), options)
    first = next(segments)  # the first batch is decoded and aligned; the ASR model rests
    assert first.words and p.decoder.model is None
    (folder / "decoder.f32.gguf").unlink()
    with pytest.raises(ModelError, match=r"decoder\.f32\.gguf: missing; convert the model again"):
        list(segments)


def test_a_batch_with_nothing_said_keeps_the_asr_model_loaded(models):
    """The aligner only has a turn when a batch has text to time: after a batch in which the model heard no
    speech, the ASR model keeps its weights and encoder sessions for the next batch (no swap of about 0.3 s)."""
    from dataclasses import replace

    from qwen3asr_plugin.engine.aligner import ForcedAligner
    from qwen3asr_plugin.engine.asr_output import ParsedOutput

    p = make_pipeline(models("tiny"), "f32", True)
    p.aligner = ForcedAligner(
        load_model_info(models("aligner-tiny")),
        EncoderOptions(precision="fp32", device="cpu"),
        DecoderOptions(quant="f32", kv_f32=True),
    )
    chunks = p.transcribe_chunks
    silent = ParsedOutput(language=None, text="", no_speech=True)
    p.transcribe_chunks = lambda *a, **k: [replace(r, parsed=silent) for r in chunks(*a, **k)]
    audio = np.concatenate([speech_like(16_000 * 9, seed=s) for s in range(2)])
    options = TranscribeOptions(chunking=ChunkOptions(max_seconds=10), batch_size=1, first_batch_size=1)
    segments, _ = p.transcribe_stream(iter([audio]), options)
    assert list(segments) == []
    assert p.decoder.model is not None and p.encoder._backend is not None
    assert p.aligner.decoder.model is None

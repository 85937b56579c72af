"""The GGUF decoder under llama.cpp against transformers' native Qwen3ASR on the same random weights."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile
from transformers import AutoTokenizer

from qwen3asr_plugin import ASRModel
from qwen3asr_plugin.engine.decoder import DecoderOptions, Generation, loop_start
from qwen3asr_plugin.engine.encoder import EncoderOptions
from qwen3asr_plugin.engine.errors import Qwen3ASRError
from qwen3asr_plugin.engine.mel import log_mel
from qwen3asr_plugin.engine.model_folder import load_model_info
from qwen3asr_plugin.engine.pipeline import AsrPipeline
from tests.parity import cosine, speech_like, transcribe_array, transcribe_chunk
from tests.reference import reference_generate, reference_logits, reference_model

GEOMETRIES = ["tiny", "0.6b-heads", "official-ids"]
_cache: dict = {}


def pipeline(models, geometry: str, quant: str = "f32", kv_f32: bool = True) -> AsrPipeline:
    key = (geometry, quant, kv_f32)
    if key not in _cache:
        info = load_model_info(models(geometry))
        _cache[key] = AsrPipeline(
            info,
            EncoderOptions(precision="fp32", device="cpu"),
            DecoderOptions(quant=quant, kv_f32=kv_f32, temperatures=(0.0,)),
        )
    return _cache[key]


def reference(checkpoints, geometry: str):
    if ("ref", geometry) not in _cache:
        _cache[("ref", geometry)] = reference_model(checkpoints(geometry))
    return _cache[("ref", geometry)]


AUDIO = speech_like(16_000 * 3 + 1234)


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_f32_logits_match_reference(models, checkpoints, geometry):
    p = pipeline(models, geometry)
    result = transcribe_chunk(p, AUDIO, None, "", max_new_tokens=1)
    ref = reference_logits(reference(checkpoints, geometry), result.prompt.token_ids(), log_mel(AUDIO))
    ours = result.generation.logits_first
    assert np.abs(ours - ref).max() <= 1e-3
    # The default f16 KV cache stays close too.
    default = transcribe_chunk(pipeline(models, geometry, kv_f32=False), AUDIO, None, "", max_new_tokens=1)
    assert cosine(default.generation.logits_first, ref) >= 0.99999


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_q8_0_logits_cosine(models, checkpoints, geometry):
    # The default pairing on CPUs without bf16 dot products: q8_0 weights, f16 KV cache, flash attention.
    result = transcribe_chunk(
        pipeline(models, geometry, "q8_0", kv_f32=False), AUDIO, None, "", max_new_tokens=1
    )
    ref = reference_logits(reference(checkpoints, geometry), result.prompt.token_ids(), log_mel(AUDIO))
    assert cosine(result.generation.logits_first, ref) >= 0.999


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_bf16_logits_and_greedy_tokens(bf16_models, checkpoints, geometry):
    """The default pairing on CPUs with bf16 dot products: bf16 weights (the official checkpoints' own type),
    f16 KV cache, flash attention. Its logits stay within the q8_0 bar (in fact closer than q8_0's), and the
    greedy tokens equal the f32 reference's."""
    p = AsrPipeline(
        load_model_info(bf16_models(geometry)),
        EncoderOptions(precision="fp32", device="cpu"),
        DecoderOptions(quant="bf16", temperatures=(0.0,)),
    )
    assert p.decoder.quant == "bf16"
    result = transcribe_chunk(p, AUDIO, None, "", max_new_tokens=16)
    model = reference(checkpoints, geometry)
    ref = reference_logits(model, result.prompt.token_ids(), log_mel(AUDIO))
    score = cosine(result.generation.logits_first, ref)
    print(f"bf16 logits cosine ({geometry}): {score:.6f}")
    assert score >= 0.9995
    expected = reference_generate(
        model, result.prompt.token_ids(), log_mel(AUDIO), 16, list(p.info.eos_token_ids)
    )
    assert result.tokens == expected


def test_32_greedy_tokens_identical(models, checkpoints):
    p = pipeline(models, "tiny")
    result = transcribe_chunk(p, AUDIO, None, "", max_new_tokens=32)
    ref = reference_generate(
        reference(checkpoints, "tiny"),
        result.prompt.token_ids(),
        log_mel(AUDIO),
        32,
        list(p.info.eos_token_ids),
    )
    assert loop_start(ref) is None and len(set(ref)) >= 6  # the fixture must give a varied, loop-free output
    assert result.tokens == ref


def test_kv_cache_is_sized_for_what_is_asked(models):
    """The KV cache is touched whole when llama.cpp makes it (448 MiB at 4096 tokens of the 0.6B model): it
    holds what the chunk needs, in 256-token steps, and grows only when a longer chunk comes."""
    p = pipeline(models, "tiny")
    d = p.decoder
    result = transcribe_chunk(p, AUDIO, None, "", max_new_tokens=32)
    need = result.generation.prompt_tokens + 32 + 1
    assert d.seq_tokens == -(-need // 256) * 256 < d.context_tokens
    assert d.L.llama_n_ctx(d.ctx) == d.n_seq * d.seq_tokens
    long = speech_like(16_000 * 25)
    result = transcribe_chunk(p, long, None, "", max_new_tokens=300)
    assert d.seq_tokens == -(-(result.generation.prompt_tokens + 300 + 1) // 256) * 256
    assert d.L.llama_n_ctx(d.ctx) == d.n_seq * d.seq_tokens


def rendered_reference(tokenizer, n_audio: int, context: str, language: str | None) -> list[int]:
    """The prompt as qwen_asr's `Qwen3ASRModel._build_text_prompt` renders it, through the HF tokenizer."""
    text = (
        f"<|im_start|>system\n{context}<|im_end|>\n<|im_start|>user\n<|audio_start|>"
        + "<|audio_pad|>" * n_audio
        + "<|audio_end|><|im_end|>\n<|im_start|>assistant\n"
    )
    if language:
        text += f"language {language}<asr_text>"
    return tokenizer.encode(text)


@pytest.mark.parametrize("geometry", ["tiny", "official-ids"])
@pytest.mark.parametrize(
    ("context", "language"),
    [("", None), ("Names: Ada Lovelace, 你好", None), ("", "English"), ("terms", "Chinese")],
)
def test_prompt_token_for_token(models, checkpoints, geometry, context, language):
    p = pipeline(models, geometry)
    result = transcribe_chunk(p, AUDIO, language, context, max_new_tokens=1)
    prompt = result.prompt
    tokenizer = AutoTokenizer.from_pretrained(str(checkpoints(geometry)))
    assert prompt.token_ids() == rendered_reference(tokenizer, prompt.n_audio, context, language)


def test_prompt_matches_transformers_processor(models, checkpoints):
    """transformers' own Qwen3ASRProcessor.apply_transcription_request renders the same ids."""
    from transformers import Qwen3ASRProcessor, WhisperFeatureExtractor

    folder = checkpoints("tiny")
    processor = Qwen3ASRProcessor(
        WhisperFeatureExtractor(feature_size=128),
        AutoTokenizer.from_pretrained(str(folder)),
        chat_template=_chat_template(folder),
    )
    p = pipeline(models, "tiny")
    for language, code in ((None, None), ("English", "en")):
        ours = transcribe_chunk(p, AUDIO, language, "", max_new_tokens=1).prompt.token_ids()
        batch = processor.apply_transcription_request(AUDIO, language=code, return_tensors="pt")
        assert batch["input_ids"][0].tolist() == ours


def _chat_template(folder: Path) -> str:
    import json

    return json.loads((folder / "chat_template.json").read_text())["chat_template"]


def test_special_token_ids_come_from_the_config(models):
    tiny, official = load_model_info(models("tiny")), load_model_info(models("official-ids"))
    assert tiny.token_ids["im_start"] == 1001 and official.token_ids["im_start"] == 151644
    for geometry, info in (("tiny", tiny), ("official-ids", official)):
        prompt = transcribe_chunk(pipeline(models, geometry), AUDIO, "English", "", 1).prompt
        ids = info.token_ids
        assert prompt.prefix[0] == ids["im_start"] and prompt.prefix[-1] == ids["audio_start"]
        assert prompt.suffix[:2] == [ids["audio_end"], ids["im_end"]] and prompt.suffix[-1] == ids["asr_text"]
        assert prompt.token_ids().count(ids["audio_pad"]) == prompt.n_audio


def fake_generation(p: AsrPipeline, text_before: str, text_after: str | None) -> Generation:
    tokens = p.decoder.tokenize(text_before)
    if text_after is not None:
        tokens += [p.info.token_ids["asr_text"]] + p.decoder.tokenize(text_after)
    return Generation(tokens=tokens, finished=True, looped=False, temperature=0.0)


def test_detected_language_and_no_speech(models, monkeypatch):
    p = pipeline(models, "tiny")
    from qwen3asr_plugin.engine.chunking import ChunkOptions
    from qwen3asr_plugin.engine.pipeline import TranscribeOptions

    outputs = iter(
        [
            fake_generation(p, "language English", " hello world"),
            fake_generation(p, "language None", ""),
            fake_generation(p, "language chinese", "你好"),
        ]
    )
    monkeypatch.setattr(
        p.decoder, "generate_batch", lambda prompts, *a, **k: [next(outputs) for _ in prompts]
    )
    audio = np.concatenate([speech_like(16_000 * 20)] * 3)  # three chunks of 20 s
    options = TranscribeOptions(chunking=ChunkOptions(max_seconds=25, first_max_seconds=None))  # three chunks
    segments, info = transcribe_array(p, audio, options)
    segments = list(segments)
    assert [(s.language, s.text) for s in segments] == [("English", "hello world"), ("Chinese", "你好")]
    assert segments[0].start == 0.0 and segments[1].start > segments[0].end  # the silent chunk left a gap
    assert info.language == "English" and info.languages == ["English", "Chinese"]


def test_forced_language_keeps_the_whole_output(models, monkeypatch):
    p = pipeline(models, "tiny")
    monkeypatch.setattr(
        p.decoder,
        "generate_batch",
        lambda prompts, *a, **k: [fake_generation(p, " forced text", None) for _ in prompts],
    )
    result = transcribe_chunk(p, AUDIO, "German", "", 8)
    assert result.parsed.language == "German" and result.parsed.text == "forced text"
    with pytest.raises(Qwen3ASRError, match="unknown language"):
        from qwen3asr_plugin.engine.pipeline import TranscribeOptions

        transcribe_array(p, AUDIO, TranscribeOptions(language="Klingon"))


def test_repetition_guard_retries_and_never_adds_a_marker(tiny_checkpoint, tmp_path):
    """A fixture seed whose greedy output loops: the guard retries with temperatures, then keeps one copy."""
    from qwen3asr_plugin.engine.convert import convert
    from tests.fixtures.checkpoint import make_checkpoint

    ckpt = make_checkpoint(tmp_path / "loopy", "tiny", seed=7)
    info = load_model_info(convert(ckpt, tmp_path / "m", decoder_quants=["f32"]))
    p = AsrPipeline(info, EncoderOptions(precision="fp32"), DecoderOptions(quant="f32"))
    greedy = transcribe_chunk(p, AUDIO, None, "", 200, temperatures=(0.0,))
    assert greedy.generation.looped
    result = transcribe_chunk(p, AUDIO, None, "", 200)
    gen = result.generation
    assert gen.attempts >= 2
    assert loop_start(gen.tokens) is None
    assert len(gen.tokens) <= 200
    # The text is exactly what the kept tokens say: nothing (no error marker) is added.
    from qwen3asr_plugin.engine.asr_output import fix_repetitions

    assert result.parsed.text == fix_repetitions(p.decoder.detokenize(gen.tokens).strip())
    if not gen.finished:  # every try failed: the greedy tokens, cut back to one copy of the loop
        assert gen.tokens == greedy.generation.tokens[: len(gen.tokens)]

    # Every try loops (the retries at temperature 0 repeat the greedy path): the greedy tokens are kept, cut
    # back to one copy of the repeated part, and the text says nothing more.
    stuck = transcribe_chunk(p, AUDIO, None, "", 200, temperatures=(0.0, 0.0, 0.0))
    gen = stuck.generation
    assert gen.attempts == 3 and gen.looped and not gen.finished
    assert loop_start(gen.tokens) is None and gen.tokens == greedy.generation.tokens
    assert stuck.parsed.text == fix_repetitions(p.decoder.detokenize(gen.tokens).strip())


def test_loop_detection_rules():
    assert loop_start([5] * 27) is None
    assert loop_start([5] * 28) == 1
    assert loop_start([1, 2, 3] * 3) is None
    assert loop_start([9, 9] + [1, 2, 3, 4, 5, 6, 7, 8] * 4) == 10
    assert loop_start(list(range(100))) is None


# Copies of a pattern of p tokens that make a loop (README): max(4, 32 // m) for the best multiple m of p.
LOOP_COPIES = {1: 28, 2: 15, 3: 10, 4: 8, 5: 6, 6: 5, 7: 4, 8: 4, 13: 4, 24: 4}


@pytest.mark.parametrize("period", list(LOOP_COPIES))
def test_a_pattern_loops_at_exactly_the_readme_count(period):
    """README: a pattern of one token loops after 28 copies, two tokens 15, three 10, four 8, five 6, six 5,
    seven or more 4 (a run of p tokens repeated max(4, 32 // p) times, where a short pattern repeated is also a
    longer run repeated); one copy fewer is not a loop, after any prefix."""
    rng = np.random.default_rng(period)
    prefix = [int(t) for t in rng.permutation(np.arange(1000, 1100))[:20]]
    pattern = [int(t) for t in rng.permutation(np.arange(1, 100))[:period]]  # distinct: primitive
    need = LOOP_COPIES[period]
    assert need == min(max(4, 32 // (k * period)) * k for k in range(1, 24 // period + 1))
    assert loop_start(prefix + pattern * (need - 1)) is None
    assert loop_start(prefix + pattern * need) == len(prefix) + period  # the first copy is kept
    if period > 1:  # one token into the next copy: the loop is the rotated pattern, from one token later
        assert loop_start(prefix + pattern * need + pattern[:1]) == len(prefix) + period + 1
    assert loop_start(prefix + pattern * need + [5000]) is None  # only a repeating tail counts


def test_token_budget_scales_with_audio(models, monkeypatch):
    """README: a budget of 24 + 10 tokens per second of audio per chunk; the decoder stops at it."""
    from qwen3asr_plugin.engine.pipeline import TranscribeOptions

    p = pipeline(models, "tiny")
    asked: list[int] = []
    real = p.decoder.generate_batch

    def spy(prompts, audios, max_new_tokens, *a, **k):
        asked.extend(max_new_tokens)
        return real(prompts, audios, max_new_tokens, *a, **k)

    monkeypatch.setattr(p.decoder, "generate_batch", spy)
    for seconds in (7.0, 9.5):  # one chunk each (a first chunk is at most 10 s)
        list(transcribe_array(p, speech_like(int(16_000 * seconds)), TranscribeOptions())[0])
    assert asked == [24 + 70, 24 + 95]
    short = transcribe_chunk(p, speech_like(16_000), None, "", max_new_tokens=5)
    assert len(short.tokens) <= 5


def test_api_and_cli_give_the_reference_greedy_tokens(models, checkpoints, tmp_path):
    folder = models("tiny")
    wav = tmp_path / "speech.wav"
    wavfile.write(wav, 16_000, AUDIO)
    model = ASRModel(folder, device="cpu", decoder_quant="f32", encoder_precision="fp32")  # the exact path
    segments, info = model.transcribe(wav, temperature_fallback=False, vad_filter=False)
    segments = list(segments)
    budget = int(24 + 10.0 * AUDIO.size / 16_000)
    prompt = transcribe_chunk(pipeline(models, "tiny"), AUDIO, None, "", 1).prompt
    ref = reference_generate(
        reference(checkpoints, "tiny"),
        prompt.token_ids(),
        log_mel(AUDIO),
        budget,
        list(model.info.eos_token_ids),
    )
    assert loop_start(ref) is None
    assert len(segments) == 1 and list(segments[0].tokens) == ref
    assert info.duration == pytest.approx(AUDIO.size / 16_000)
    tokenizer = AutoTokenizer.from_pretrained(str(checkpoints("tiny")))
    expected = tokenizer.decode(ref, skip_special_tokens=True).strip()
    run = subprocess.run(
        [
            str(Path(sys.executable).parent / "qwen3asr"),
            "transcribe",
            str(wav),
            "--model",
            str(folder),
            "--decoder-quant",
            "f32",
            "--encoder-precision",
            "fp32",
            "--no-fallback",
            "--device",
            "cpu",
            "--no-vad",
            "--format",
            "txt",
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "speech.txt").read_text(encoding="utf-8").strip() == expected


def test_decoder_types_rank_by_their_error(models, bf16_models, checkpoints, tmp_path):
    """At a 1024-wide geometry: bf16 (the official weights exactly) is closest to the reference, then q8_0, then
    q6_k and q4_k (options for speed); each loses more than the one above it."""
    from qwen3asr_plugin.engine.convert import convert

    folder = convert(checkpoints("0.6b-heads"), tmp_path / "k", ("fp32",), ("q6_k", "q4_k"))
    ref = None
    scores = {}
    for quant, where in (
        ("bf16", bf16_models("0.6b-heads")),
        ("q8_0", models("0.6b-heads")),
        ("q6_k", folder),
        ("q4_k", folder),
    ):
        p = AsrPipeline(
            load_model_info(where),
            EncoderOptions(precision="fp32", device="cpu"),
            DecoderOptions(quant=quant, temperatures=(0.0,)),
        )
        result = transcribe_chunk(p, AUDIO, None, "", max_new_tokens=1)
        if ref is None:
            ref = reference_logits(
                reference(checkpoints, "0.6b-heads"), result.prompt.token_ids(), log_mel(AUDIO)
            )
        scores[quant] = cosine(result.generation.logits_first, ref)
    print("logits cosine to the reference:", scores)
    assert scores["bf16"] >= 0.9999
    assert scores["q8_0"] >= 0.999
    assert scores["bf16"] > scores["q8_0"] > scores["q6_k"] > scores["q4_k"] >= 0.95
    assert scores["q6_k"] >= 0.99


def test_cpu_features_are_checked_against_the_cpu():
    """bf16 is the default only where llama.cpp has bf16 dot products built in and the CPU has them too; a
    build for another CPU is reported by name."""
    from qwen3asr_plugin.engine.llama_runtime import cpu_features, missing_cpu_features

    built = {"AVX2", "AVX512", "AVX512_BF16", "FMA", "LLAMAFILE", "OPENMP"}
    assert missing_cpu_features(built, {"avx2", "avx512f", "avx512_bf16", "fma"}) == []
    assert missing_cpu_features(built, {"avx2", "avx512f", "fma"}) == ["AVX512_BF16"]
    assert missing_cpu_features(built, {"avx2", "fma"}) == ["AVX512", "AVX512_BF16"]
    assert missing_cpu_features(built, set()) == []  # flags unknown (no /proc/cpuinfo): nothing to report
    # This machine's build runs on this machine (tests/run.sh rebuilds llama-cpp-python otherwise).
    assert missing_cpu_features() == []
    assert cpu_features()  # the system info was read


def test_a_marker_written_again_inside_the_text_is_dropped():
    """A model may write `language X<asr_text>` again inside its text (the small model trained here does on
    long chunks): the transcript keeps the words on both sides and never the marker."""
    from qwen3asr_plugin.engine.asr_output import parse_output

    vocab = {
        1: "language",
        2: " English",
        3: "Hello",
        4: " world.",
        5: " Again",
        6: "我们",
        7: " Chinese",
        9: "<asr_text>",
    }

    def detokenize(ids):
        return "".join(vocab[i] for i in ids)

    assert parse_output([1, 2, 9, 3, 4, 1, 2, 9, 5], 9, detokenize, None).text == "Hello world. Again"
    assert parse_output([1, 2, 9, 3, 4, 1, 7, 9, 6], 9, detokenize, None).text == "Hello world.我们"
    assert parse_output([1, 2, 9, 3, 4], 9, detokenize, None).text == "Hello world."
    assert parse_output([1, 2, 9, 9, 3], 9, detokenize, None).text == "Hello"
    assert parse_output([3, 4, 1, 2, 9, 5], 9, detokenize, "English").text == "Hello world. Again"  # forced


def test_a_cpu_only_llama_cpp_decodes_on_the_cpu_and_says_so_once(models, tmp_path):
    """This machine's llama.cpp has no GPU backend (tests/test_gpu_offload.py covers one that has): asked for
    a GPU, the decoder runs on the CPU with one note on stderr, once per process; the default `auto` says
    nothing. `qwen3asr devices` tells the same."""
    code = (
        "from qwen3asr_plugin.engine.decoder import DecoderOptions, TextDecoder\n"
        "from qwen3asr_plugin.engine.model_folder import load_model_info\n"
        "import sys\n"
        "info = load_model_info(sys.argv[1])\n"
        "for _ in range(2):\n"
        "    d = TextDecoder(info, DecoderOptions(gpu_layers=-1, gpu_asked=sys.argv[2] == '1'))\n"
        "    assert d.device is None\n"
    )
    folder = str(models("tiny"))
    asked = subprocess.run([sys.executable, "-c", code, folder, "1"], capture_output=True, text=True)
    assert asked.returncode == 0, asked.stderr
    assert asked.stderr.count("note: the decoder runs on the CPU") == 1, asked.stderr
    auto = subprocess.run([sys.executable, "-c", code, folder, "0"], capture_output=True, text=True)
    assert auto.returncode == 0 and "decoder runs on the CPU" not in auto.stderr, auto.stderr
    devices = subprocess.run(
        [sys.executable, "-m", "qwen3asr_plugin", "devices", "--json"], capture_output=True, text=True
    )
    import json

    found = json.loads(devices.stdout)
    assert found["decoder"]["gpus"] == [] and found["decoder"]["library"].endswith(
        ("libllama.so", "llama.dll")
    )
    assert "CPUExecutionProvider" in found["encoder"]["onnxruntime_providers"]

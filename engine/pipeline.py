"""Audio to segments: chunk, mel, encoder, prompt, decoder, parse. Lazy: work happens as the caller iterates."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from .aligner import ForcedAligner
from .asr_output import ParsedOutput, parse_output
from .chunking import ChunkOptions, iter_chunks, source_word
from .decoder import DecoderOptions, Generation, TextDecoder
from .encoder import AudioEncoder, EncoderOptions
from .errors import ModelError
from .languages import canonical_language
from .mel import log_mel
from .model_folder import ModelInfo
from .prompt import Prompt, build_asr_prompt
from .records import Segment, TranscriptionInfo


@dataclass(frozen=True)
class TranscribeOptions:
    language: str | None = None
    context: str = ""
    tokens_per_second: float = 10.0  # token budget per second of audio (speech gives about 3-6)
    min_new_tokens: int = 24
    temperature_fallback: bool = True  # False: greedy only (the repetition guard still cuts loops)
    chunking: ChunkOptions = ChunkOptions()  # the chunk length is chunking.max_seconds
    # Chunks decoded together (one llama.cpp sequence each, one weight pass per step for all: 2 give 1.6x
    # and 4 give 2.2x the decode tokens/s on a 2-core CPU); their segments come out when the group is done.
    batch_size: int = 4
    # The first group's size (None: batch_size); 1 gets the first segment out as early as possible, for
    # progressive outputs such as mpv's.
    first_batch_size: int | None = None


@dataclass(frozen=True)
class ChunkResult:
    """One chunk through mel, encoder and decoder: the prompt, the generation and what its tokens mean."""

    prompt: Prompt
    generation: Generation
    parsed: ParsedOutput

    @property
    def tokens(self) -> list[int]:
        return self.generation.tokens


class AsrPipeline:
    """An ASR model folder loaded once: the encoder sessions and the llama.cpp decoder."""

    def __init__(
        self,
        info: ModelInfo,
        encoder: EncoderOptions = EncoderOptions(),
        decoder: DecoderOptions = DecoderOptions(),
        aligner: ForcedAligner | None = None,
    ):
        if info.kind != "asr":
            raise ModelError(
                f"{info.folder}: is a forced-aligner model, not an ASR model; give a Qwen3-ASR model "
                "(e.g. --model qwen3-asr-0.6b)"
            )
        if info.audio.output_dim != info.text.hidden_size:
            raise ModelError(
                f"{info.folder}: the encoder gives {info.audio.output_dim}-wide embeddings but the decoder is "
                f"{info.text.hidden_size} wide; convert the model again (`qwen3asr convert`)"
            )
        self.info = info
        self.aligner = aligner
        if aligner is not None:  # loaded (to check it) before this model: never resident together
            self._rest(aligner)
        self.encoder = AudioEncoder(info, encoder)
        self.decoder = TextDecoder(info, decoder)

    def _rest(self, model) -> None:
        """`model` (this pipeline's ASR model or its aligner) is not needed until the other has had its turn.
        With an aligner the two take turns: the one not running gives back its decoder's context and, where
        making them again is cheap (on the CPU: TextDecoder.weights_releasable, AudioEncoder.releasable), its
        decoder's weights and its encoder's sessions too, so the job's peak memory holds one model's
        weights, not both."""
        if model.decoder.weights_releasable:
            model.decoder.release_weights()
        else:
            model.decoder.release_context()
        if model.encoder.releasable:
            model.encoder.release()

    def transcribe_stream(
        self,
        blocks: Iterable[np.ndarray],
        options: TranscribeOptions,
        duration: float | None = None,
        on_progress: Callable[[float], None] | None = None,
        start_seconds: float = 0.0,
    ) -> tuple[Iterator[Segment], TranscriptionInfo]:
        """Segments for 16 kHz sample blocks, read lazily; `on_progress` gets the seconds done after each chunk.
        The blocks start `start_seconds` into the input (times are reported from the input's start)."""
        language = canonical_language(options.language, self.info.languages) if options.language else None
        info = TranscriptionInfo(language=language, duration=duration or 0.0)
        return self._segments(blocks, language, options, info, on_progress, start_seconds), info

    def _segments(
        self,
        blocks: Iterable[np.ndarray],
        language: str | None,
        options: TranscribeOptions,
        info: TranscriptionInfo,
        on_progress: Callable[[float], None] | None,
        start_seconds: float = 0.0,
    ) -> Iterator[Segment]:
        index = 0
        first = int(round(start_seconds * self.info.mel.sampling_rate))
        chunks = iter_chunks(self._counted(blocks, info, start_seconds), options.chunking, first_sample=first)
        if self.aligner is not None:  # loaded to check it, or by the last input: this batch decodes first
            self._rest(self.aligner)
        for group in _groups(chunks, options.first_batch_size or options.batch_size, options.batch_size):
            results = self.transcribe_chunks(
                [chunk.audio for chunk in group],
                language,
                options.context,
                [
                    int(
                        options.min_new_tokens
                        + options.tokens_per_second * c.n_samples / self.info.mel.sampling_rate
                    )
                    for c in group
                ],
                # Without the fallback, only the schedule's first (greedy) temperature.
                temperatures=None if options.temperature_fallback else self.decoder.options.temperatures[:1],
            )
            if self.aligner is not None and any(r.parsed.text and not r.parsed.no_speech for r in results):
                self._rest(self)  # the batch's text is parsed: the aligner's turn
            for chunk, result in zip(group, results, strict=True):
                if on_progress is not None:
                    on_progress(chunk.end_seconds)
                segment = self._segment(chunk, result, index, info)
                if segment is not None:
                    index += 1
                    yield segment
            if self.aligner is not None:
                self._rest(self.aligner)  # the next batch decodes

    def _segment(self, chunk, result: ChunkResult, index: int, info: TranscriptionInfo) -> Segment | None:
        parsed = result.parsed
        if parsed.no_speech or not parsed.text:
            return None
        if parsed.language and parsed.language not in info.languages:
            info.languages.append(parsed.language)
            if info.language is None:
                info.language = parsed.language
        start, end, words = round(chunk.start_seconds, 3), round(chunk.end_seconds, 3), None
        if self.aligner is not None:
            # The aligner times the text on the same chunk the text came from; its times map back to the
            # input's (across the non-speech VAD cut out of the chunk, if any).
            timed = self.aligner.align(chunk.audio[: chunk.n_samples], parsed.text, parsed.language)
            words = tuple(source_word(chunk, w) for w in timed)
            if words:
                start, end = words[0].start, max(w.end for w in words)
        return Segment(
            id=index,
            start=start,
            end=end,
            text=parsed.text,
            language=parsed.language,
            tokens=tuple(result.tokens),
            temperature=result.generation.temperature,
            words=words,
        )

    def _counted(
        self, blocks: Iterable[np.ndarray], info: TranscriptionInfo, start_seconds: float = 0.0
    ) -> Iterator[np.ndarray]:
        """Pass blocks through; info.duration grows with the audio read and is exact once all is read (the
        container's figure, used for progress until then, is rounded)."""
        seen = 0
        rate = self.info.mel.sampling_rate
        for block in blocks:
            seen += block.size
            info.duration = max(info.duration, start_seconds + seen / rate)
            yield block
        if start_seconds == 0.0:
            info.duration = seen / rate

    def transcribe_chunks(
        self,
        audios: list[np.ndarray],
        language: str | None,
        context: str,
        max_new_tokens: list[int],
        temperatures: tuple[float, ...] | None = None,
    ) -> list[ChunkResult]:
        """Chunks encoded one by one, then decoded together (TextDecoder.generate_batch): for each, the token
        ids generated and their parsed meaning."""
        prompts, embeddings = [], []
        for audio in audios:
            emb = self.encoder.encode(log_mel(audio, self.info.mel))
            embeddings.append(emb)
            prompts.append(
                build_asr_prompt(self.decoder.tokenize, self.info.token_ids, emb.shape[0], context, language)
            )
        gens = self.decoder.generate_batch(prompts, embeddings, max_new_tokens, temperatures)
        token_id = self.info.token_ids["asr_text"]
        return [
            ChunkResult(prompt, gen, parse_output(gen.tokens, token_id, self.decoder.detokenize, language))
            for gen, prompt in zip(gens, prompts, strict=True)
        ]


def _groups(items: Iterable, first_size: int, size: int) -> Iterator[list]:
    """Consecutive lists of `size` items (the first of `first_size`), read lazily."""
    group: list = []
    want = max(1, first_size)
    for item in items:
        group.append(item)
        if len(group) >= want:
            yield group
            group, want = [], max(1, size)
    if group:
        yield group

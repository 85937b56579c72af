"""The ASR prompt, exactly as qwen_asr's `Qwen3ASRModel._build_text_prompt` renders the chat template.

    <|im_start|>system\\n{context}<|im_end|>\\n<|im_start|>user\\n<|audio_start|>{audio x N}<|audio_end|>
    <|im_end|>\\n<|im_start|>assistant\\n[language {Name}<asr_text>]

The system block is always there (empty context by default); `language X<asr_text>` is appended only when
the caller forces a language. Text between special tokens is tokenized as one span, as the reference
tokenizer does, and special tokens are inserted by id, so user context can never inject one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Tokenize = Callable[[str], list[int]]


@dataclass(frozen=True)
class Prompt:
    prefix: list[int]  # through <|audio_start|>
    n_audio: int
    suffix: list[int]  # from <|audio_end|> to the end of the prompt
    audio_pad_id: int

    def token_ids(self) -> list[int]:
        """The whole prompt with the audio placeholders, as the reference processor expands it."""
        return self.prefix + [self.audio_pad_id] * self.n_audio + self.suffix


def _render(parts: list[int | str], tokenize: Tokenize) -> list[int]:
    ids: list[int] = []
    for part in parts:
        ids.extend([part] if isinstance(part, int) else tokenize(part) if part else [])
    return ids


def build_asr_prompt(
    tokenize: Tokenize,
    token_ids: dict[str, int],
    n_audio: int,
    context: str = "",
    language: str | None = None,
) -> Prompt:
    """Prompt for `n_audio` audio embeddings; `language` is a canonical name or None to let the model detect."""
    t = token_ids
    prefix = _render(
        [
            t["im_start"],
            "system\n" + (context or ""),
            t["im_end"],
            "\n",
            t["im_start"],
            "user\n",
            t["audio_start"],
        ],
        tokenize,
    )
    tail: list[int | str] = [t["audio_end"], t["im_end"], "\n", t["im_start"]]
    if language:
        tail += [f"assistant\nlanguage {language}", t["asr_text"]]
    else:
        tail += ["assistant\n"]
    return Prompt(prefix=prefix, n_audio=n_audio, suffix=_render(tail, tokenize), audio_pad_id=t["audio_pad"])

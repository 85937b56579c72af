"""The model's raw output to (language, text), as `parse_asr_output` in qwen_asr/inference/utils.py does.

Raw output is `language English<asr_text>Hello world.` when the language is detected, just the text when it
was forced, and `language None<asr_text>` when there is no speech. The `<asr_text>` boundary is found by
token id, not by rendered text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .languages import normalize_detected
from .records import join_texts


@dataclass(frozen=True)
class ParsedOutput:
    language: str | None  # None: no speech (or undetectable)
    text: str
    no_speech: bool


def fix_repetitions(text: str, threshold: int = 20) -> str:
    """The official clean-up: a character run longer than `threshold`, or a pattern of up to 20 characters
    repeated `threshold` times or more in a row, is reduced to one copy. Nothing is added."""
    text = re.sub(rf"(.)\1{{{threshold},}}", r"\1", text, flags=re.S)
    for size in range(1, 21):
        text = re.sub(rf"(.{{{size}}})\1{{{threshold - 1},}}", r"\1", text, flags=re.S)
    return text


_MARKER = re.compile(r"\s*language\s+[A-Za-z]+\s*$")


def _without_markers(token_ids: list[int], asr_text_id: int, detokenize) -> str:
    """The text after the first `<asr_text>`, without any later `language X<asr_text>` the model wrote
    (seen with a small model on long chunks; the official parser would keep it as text): a marker is never
    written into a transcript."""
    pieces, start = [], 0
    for i, token in enumerate([*token_ids, asr_text_id]):
        if token == asr_text_id:
            pieces.append(token_ids[start:i])
            start = i + 1
    texts = [detokenize(p) for p in pieces]
    texts = [_MARKER.sub("", t) if i + 1 < len(texts) else t for i, t in enumerate(texts)]
    return join_texts(t.strip() for t in texts)


def parse_output(
    token_ids: list[int], asr_text_id: int, detokenize, forced_language: str | None
) -> ParsedOutput:
    """Split generated tokens into language and text; `detokenize` maps ids to a str."""
    if forced_language:
        return ParsedOutput(
            forced_language, fix_repetitions(_without_markers(token_ids, asr_text_id, detokenize)), False
        )
    if asr_text_id not in token_ids:
        text = fix_repetitions(detokenize(token_ids).strip())
        return ParsedOutput(None, text, not text)
    cut = token_ids.index(asr_text_id)
    meta = detokenize(token_ids[:cut]).strip()
    text = fix_repetitions(_without_markers(token_ids[cut + 1 :], asr_text_id, detokenize))
    if "language none" in meta.lower():
        return ParsedOutput(None, "", True)
    language = None
    for line in meta.splitlines():
        if line.strip().lower().startswith("language "):
            language = normalize_detected(line.strip()[len("language ") :])
            break
    return ParsedOutput(language, text, False)

"""From timed words to subtitle cues that follow Netflix's "Timed Text Style Guide: General Requirements".

1. A cue ends after sentence-final punctuation and at pauses of at least `split_pause_seconds`.
2. A cue too long for `max_lines` lines of `max_line_chars`, or for `max_duration_seconds`, is split at the
   best boundary: after a comma-like mark, else at the largest pause, else nearest the middle.
3. Fragments shorter than the minimum duration merge into the next cue when it follows without a pause and
   the result still fits (two short sentences may share a cue).
4. Text longer than a line breaks into two near the middle, after punctuation when one is close, with the
   shorter line on top.
5. Timing: start at the first word; end at the last word, extended to the minimum duration and up to
   `linger_seconds` (more when reading speed asks for it), never closer than `min_gap_seconds` to the next.
Widths count East-Asian wide and full-width characters as 1 and others as 0.5 for CJK languages (whose
limits are in full-width characters) and every character as 1 otherwise.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, replace

from .records import Cue, Word

SENTENCE_END = tuple(".?!。？！…")
CLAUSE_END = tuple(",，、;；:：")
CJK_LANGUAGES = {"Chinese", "Cantonese", "Japanese", "Korean"}


@dataclass(frozen=True)
class CueRules:
    max_line_chars: float = 42
    max_lines: int = 2
    min_duration_seconds: float = 0.833  # 20 frames at 24 fps
    max_duration_seconds: float = 7.0
    max_chars_per_second: float = 20.0  # a target for extending the end, not a hard limit
    min_gap_seconds: float = 0.083  # 2 frames at 24 fps
    linger_seconds: float = 0.5
    split_pause_seconds: float = 0.5
    cjk: bool = False  # count width in full-width characters


# Per-language defaults: Netflix's Simplified Chinese (PRC), Korean and Japanese Timed Text Style Guides.
LANGUAGE_RULES = {
    "Chinese": CueRules(max_line_chars=16, max_chars_per_second=9, cjk=True),
    "Cantonese": CueRules(max_line_chars=16, max_chars_per_second=9, cjk=True),
    "Korean": CueRules(max_line_chars=16, max_chars_per_second=12, cjk=True),
    "Japanese": CueRules(max_line_chars=13, max_chars_per_second=4, cjk=True),
}


def rules_for(language: str | None, text: str = "", **overrides) -> CueRules:
    """Default rules for a language (or, when unknown, for the script the text is mostly in)."""
    rules = LANGUAGE_RULES.get(language or "")
    if rules is None:
        wide = sum(unicodedata.east_asian_width(c) in "WF" for c in text)
        rules = LANGUAGE_RULES["Chinese"] if text and wide > len(text.replace(" ", "")) / 2 else CueRules()
    return replace(rules, **{k: v for k, v in overrides.items() if v is not None})


def width(text: str, cjk: bool) -> float:
    if not cjk:
        return float(len(text))
    return sum(1.0 if unicodedata.east_asian_width(c) in "WF" else 0.5 for c in text)


@dataclass(frozen=True)
class TimedWord:
    start: float
    end: float
    word: str
    language: str | None
    estimated: bool = False  # times spread over a segment without word timings, not measured


def _text(words: list[TimedWord]) -> str:
    return "".join(w.word for w in words).strip()


def _sanitize(words: list[TimedWord]) -> list[TimedWord]:
    """Drop empty words; make times finite, non-negative, start <= end and starts non-decreasing."""
    out: list[TimedWord] = []
    last_start = 0.0
    for w in words:
        if not w.word or not w.word.strip():
            if out and w.word:
                out[-1] = replace(out[-1], word=out[-1].word + w.word)
            continue
        start = w.start if w.start == w.start and w.start not in (float("inf"), float("-inf")) else last_start
        end = w.end if w.end == w.end and w.end not in (float("inf"), float("-inf")) else start
        start = max(start, last_start, 0.0)
        end = max(end, start)
        out.append(replace(w, start=start, end=end))
        last_start = start
    return out


def _fits(words: list[TimedWord], rules: CueRules) -> bool:
    if len(words) <= 1:
        return True
    if width(_text(words), rules.cjk) > rules.max_line_chars * rules.max_lines:
        return False
    return words[-1].end - words[0].start <= rules.max_duration_seconds


def _best_split(words: list[TimedWord], rules: CueRules) -> int:
    """Index k: split into words[:k] and words[k:]; prefers clause marks, then pauses, then the middle."""
    total = width(_text(words), rules.cjk)
    best, best_score = 1, float("-inf")
    for k in range(1, len(words)):
        before = words[k - 1].word.rstrip()
        left = width(_text(words[:k]), rules.cjk)
        balance = 1.0 - abs(left - total / 2) / max(total, 1.0)  # 1 at the middle
        pause = max(0.0, words[k].start - words[k - 1].end)
        score = balance + min(pause, 2.0)
        if before.endswith(SENTENCE_END):
            score += 3.0
        elif before.endswith(CLAUSE_END):
            score += 1.5
        if score > best_score:
            best, best_score = k, score
    return best


def _split(words: list[TimedWord], rules: CueRules) -> list[list[TimedWord]]:
    if _fits(words, rules):
        return [words]
    k = _best_split(words, rules)
    return _split(words[:k], rules) + _split(words[k:], rules)


def _groups(words: list[TimedWord], rules_of) -> list[list[TimedWord]]:
    """Step 1: sentences and pauses, and never a cue across a change of language."""
    groups: list[list[TimedWord]] = []
    current: list[TimedWord] = []
    for w in words:
        if current:
            prev = current[-1]
            pause = w.start - prev.end
            if (
                prev.word.rstrip().endswith(SENTENCE_END)
                or pause >= rules_of(prev).split_pause_seconds
                or w.language != prev.language
            ):
                groups.append(current)
                current = []
        current.append(w)
    if current:
        groups.append(current)
    return groups


def _merge_short(cues: list[list[TimedWord]], rules_of) -> list[list[TimedWord]]:
    out: list[list[TimedWord]] = []
    for words in cues:
        if out:
            prev = out[-1]
            rules = rules_of(prev[0])
            short = (
                prev[-1].end - prev[0].start < rules.min_duration_seconds
                or len(prev) <= 1
                or words[-1].end - words[0].start < rules.min_duration_seconds
            )
            close = words[0].start - prev[-1].end < rules.split_pause_seconds
            same = words[0].language == prev[0].language
            if short and close and same and _fits(prev + words, rules):
                out[-1] = prev + words
                continue
        out.append(words)
    return out


def _lines(words: list[TimedWord], rules: CueRules) -> tuple[str, ...]:
    text = _text(words)
    if width(text, rules.cjk) <= rules.max_line_chars or len(words) < 2 or rules.max_lines < 2:
        return (text,)
    best, best_score = None, float("inf")
    for k in range(1, len(words)):
        top, bottom = _text(words[:k]), _text(words[k:])
        wt, wb = width(top, rules.cjk), width(bottom, rules.cjk)
        over = max(0.0, wt - rules.max_line_chars) + max(0.0, wb - rules.max_line_chars)
        score = over * 10 + abs(wt - wb) + (0.5 if wt > wb else 0.0)  # bottom-heavy when close
        if words[k - 1].word.rstrip().endswith(SENTENCE_END + CLAUSE_END):
            score -= min(6.0, rules.max_line_chars / 5)
        if score < best_score:
            best, best_score = (top, bottom), score
    return best


def break_lines(words: list[TimedWord], language: str | None = None, **overrides) -> tuple[str, ...]:
    """The lines a cue of these words shows under the language's rules (rule 4), whatever its length."""
    return _lines(words, rules_for(language, _text(words), **overrides))


def timed_words(segments) -> list[TimedWord]:
    """Timed words of all segments; a segment without word timings spreads its words over its span."""
    words: list[TimedWord] = []
    for s in segments:
        if s.words:
            words.extend(TimedWord(w.start, w.end, w.word, s.language) for w in s.words)
            continue
        pieces = s.text.split(" ") if " " in s.text.strip() else list(s.text)
        pieces = [(" " if i and " " in s.text else "") + p for i, p in enumerate(pieces)]
        step = (s.end - s.start) / max(1, len(pieces))
        words.extend(
            TimedWord(s.start + i * step, s.start + (i + 1) * step, p, s.language, estimated=True)
            for i, p in enumerate(pieces)
        )
    return words


def build_cues(
    words: list[Word] | list[TimedWord],
    language: str | None = None,
    duration: float | None = None,
    **overrides,
) -> list[Cue]:
    """Cues from timed words (each word may carry its own `language`); no cue ends after `duration` (the
    media's length) when given; `overrides` change CueRules fields."""
    timed = _sanitize(
        [w if isinstance(w, TimedWord) else TimedWord(w.start, w.end, w.word, language) for w in words]
    )
    if not timed:
        return []
    cache: dict = {}

    def rules_of(w: TimedWord) -> CueRules:
        if w.language not in cache:
            sample = _text([x for x in timed if x.language == w.language][:50])
            cache[w.language] = rules_for(w.language, sample, **overrides)
        return cache[w.language]

    pieces = [part for group in _groups(timed, rules_of) for part in _split(group, rules_of(group[0]))]
    pieces = _merge_short(pieces, rules_of)
    cues: list[Cue] = []
    for i, words_ in enumerate(pieces):
        rules = rules_of(words_[0])
        text = _text(words_)
        start = words_[0].start
        end = max(w.end for w in words_)
        wanted = max(
            end + rules.linger_seconds,
            start + rules.min_duration_seconds,
            start + len(text.replace("\n", "")) / rules.max_chars_per_second,
        )
        end = min(wanted, max(end, start + rules.max_duration_seconds))
        if i + 1 < len(pieces):
            end = min(end, pieces[i + 1][0].start - rules.min_gap_seconds)
        if duration is not None:
            end = min(end, max(duration, start + 0.01))
            if (
                end - start < rules.min_duration_seconds
            ):  # words at the very end: start earlier if there is room
                floor = cues[-1].end + rules.min_gap_seconds if cues else 0.0
                start = max(floor, min(start, end - rules.min_duration_seconds))
        end = max(end, start + 0.01) if not cues or start >= cues[-1].end else end
        words = tuple(Word(w.start, w.end, w.word) for w in words_ if not w.estimated)  # measured times only
        cues.append(Cue(start, end, _lines(words_, rules), words_[0].language, words))
    return _no_overlap(cues)


def _no_overlap(cues: list[Cue]) -> list[Cue]:
    """A final pass: every cue lasts at least 10 ms (the coarsest format's unit) and ends before the next."""
    out: list[Cue] = []
    for cue in cues:
        start = max(cue.start, out[-1].end if out else 0.0)
        end = max(cue.end, start + 0.01)
        out.append(replace(cue, start=round(start, 3), end=round(end, 3)))
    return out

"""Cue rules on crafted English and Chinese word lists."""

import pytest

from qwen3asr_plugin.engine.cues import CueRules, TimedWord, build_cues, rules_for, width

ENGLISH = (
    "Hello there, my friend. This is a fairly long sentence that should be split across two lines "
    "because it is long, and it goes on and on without a stop until the very end of it. Short one. "
    "Then, after a long pause, we talk again about subtitles and their timing rules!"
)


def english_words(pause_after: dict[int, float] | None = None) -> list[TimedWord]:
    words, t = [], 0.0
    for i, w in enumerate(ENGLISH.split(" ")):
        words.append(TimedWord(t, t + 0.28, (" " if i else "") + w, "English"))
        t += 0.33 + (pause_after or {}).get(i, 0.0)
    return words


CHINESE = "今天天气很好，我们去公园散步吧。然后我们一起吃饭，好不好？这是一个非常非常长的句子，需要被分成两行才能显示完整的内容"


def chinese_words() -> list[TimedWord]:
    return [TimedWord(i * 0.22, i * 0.22 + 0.2, ch, "Chinese") for i, ch in enumerate(CHINESE)]


def check_common(cues, rules: CueRules, words):
    assert cues
    for cue in cues:
        assert cue.end > cue.start
        assert len(cue.lines) <= rules.max_lines
        for line in cue.lines:
            assert line == line.strip()
            assert width(line, rules.cjk) <= rules.max_line_chars or " " not in line.strip()
    for a, b in zip(cues, cues[1:], strict=False):
        assert a.end <= b.start  # never overlapping
        assert b.start - a.end >= rules.min_gap_seconds - 1e-6 or b.start - a.end == 0.0
    assert cues[0].start == words[0].start


def test_english_cues_follow_the_rules():
    words = english_words({40: 2.0})
    rules = rules_for("English")
    cues = build_cues(words)
    check_common(cues, rules, words)
    joined = " ".join(" ".join(c.lines) for c in cues)
    assert joined.split() == ENGLISH.split()
    assert cues[0].lines == ("Hello there, my friend.",)  # a sentence end closes a cue
    assert any(c.text.startswith("Then,") for c in cues)  # the 2 s pause starts a new cue
    assert all(c.end - c.start <= rules.max_duration_seconds + rules.linger_seconds for c in cues)
    long = [c for c in cues if len(c.text.replace("\n", " ")) > 42]
    assert long and all(len(c.lines) == 2 for c in long)
    for c in cues[:-1]:
        assert c.end - c.start >= rules.min_duration_seconds - 1e-6


def test_line_breaks_prefer_punctuation_and_bottom_heavy():
    words = english_words()
    cues = build_cues(words)
    two = [c for c in cues if len(c.lines) == 2]
    assert two
    for c in two:
        top, bottom = c.lines
        assert len(top) <= len(bottom) + 12  # balanced, bottom-heavy when close


def test_chinese_cues_count_full_width_and_join_without_spaces():
    words = chinese_words()
    rules = rules_for("Chinese")
    assert rules.max_line_chars == 16 and rules.cjk
    cues = build_cues(words)
    check_common(cues, rules, words)
    assert "".join("".join(c.lines) for c in cues) == CHINESE
    assert all(" " not in c.text for c in cues)
    assert cues[0].text == "今天天气很好，我们去公园散步吧。"


def test_unknown_language_uses_the_script():
    assert rules_for(None, "这是中文的句子").cjk
    assert not rules_for(None, "plain latin text").cjk
    assert rules_for("Japanese").max_line_chars == 13
    assert rules_for("English", max_line_chars=30).max_line_chars == 30


def test_overrides_apply():
    cues = build_cues(english_words(), max_line_chars=20, max_lines=1)
    assert all(len(c.lines) == 1 for c in cues)
    assert all(len(c.lines[0]) <= 20 or " " not in c.lines[0] for c in cues)


@pytest.mark.parametrize(
    "words",
    [
        [],
        [TimedWord(1.0, 1.0, "zero", None)],
        [TimedWord(2.0, 1.0, "backwards", None), TimedWord(1.5, 1.6, " earlier", None)],
        [TimedWord(0.0, 5.0, "a", None), TimedWord(0.1, 0.2, " b", None), TimedWord(0.1, 0.2, " c", None)],
        [TimedWord(0.0, 0.1, "", None), TimedWord(0.0, 0.1, "   ", None), TimedWord(0.2, 0.3, "x", None)],
    ],
)
def test_awkward_word_lists_give_valid_cues(words):
    cues = build_cues(words)
    for cue in cues:
        assert cue.end > cue.start >= 0.0
        assert cue.text.strip()
    for a, b in zip(cues, cues[1:], strict=False):
        assert a.end <= b.start


def test_cues_carry_only_measured_word_times():
    """A segment without word timings has its words spread over its span to make cues, but those guessed
    times are not handed on as words (the server would return them as timings)."""
    from qwen3asr_plugin.engine.cues import timed_words
    from qwen3asr_plugin.engine.records import Segment, Word

    untimed = Segment(0, 0.0, 4.0, "no word timings here at all", "English")
    timed = Segment(
        1, 5.0, 6.0, "Timed words.", "English", words=(Word(5.0, 5.4, "Timed"), Word(5.5, 6.0, " words."))
    )
    cues = build_cues(timed_words([untimed, timed]), duration=10.0)
    assert cues[0].words == () and cues[0].text == "no word timings here at all"
    assert [w.word for w in cues[-1].words] == ["Timed", " words."] and cues[-1].words[0].start == 5.0

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
        # Two frames between cues (a gap of 0 only where the earlier cue has no room: 10 ms long)
        assert b.start - a.end >= rules.min_gap_seconds - 1e-6 or a.end - a.start <= 0.011
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


def test_a_short_last_cue_starts_earlier_but_keeps_the_gap():
    """Words at the very end of the media: the last cue cannot last its minimum duration by ending later,
    so it starts earlier, but never closer than the minimum gap to the cue before."""
    words = [TimedWord(0.0, 0.3, "One.", "English"), TimedWord(1.0, 1.2, " Two.", "English")]
    rules = rules_for("English")
    cues = build_cues(words, duration=1.3)
    assert [c.text for c in cues] == ["One.", "Two."]
    assert cues[0].end == pytest.approx(rules.min_duration_seconds)
    assert cues[1].start == pytest.approx(cues[0].end + rules.min_gap_seconds)  # earlier than the word
    assert cues[1].end == pytest.approx(1.3)
    check_common(cues, rules, words)


def test_a_cue_lingers_up_to_half_a_second_after_its_last_word():
    """README: a cue ends at its last word plus up to 0.5 s, at least 0.833 s long."""
    alone = build_cues([TimedWord(1.0, 1.4, "Hi", "English"), TimedWord(1.5, 2.4, " there", "English")])
    assert [(c.start, c.end) for c in alone] == [(1.0, pytest.approx(2.9))]
    tight = build_cues(
        [
            TimedWord(0.0, 0.4, "The", "English"),
            TimedWord(0.5, 1.0, " first.", "English"),
            TimedWord(1.3, 2.2, " Second", "English"),
            TimedWord(2.25, 3.0, " sentence.", "English"),
        ]
    )
    assert cues_text(tight) == ["The first.", "Second sentence."]
    assert tight[0].end == pytest.approx(1.3 - 0.083)  # less than 0.5 s: the gap before the next cue rules
    brief = build_cues([TimedWord(0.0, 0.2, "Yes", "English")])
    assert brief[0].end == pytest.approx(0.833)  # the minimum duration, past the 0.5 s linger


def cues_text(cues) -> list[str]:
    return [c.text.replace("\n", " ") for c in cues]


def test_reading_speed_extends_a_fast_cue():
    """A cue read faster than the language's target (20 chars/s English, 9 Chinese) stays up longer than
    its words plus the linger: long enough to read at the target speed, while nothing follows."""
    text = "Extraordinarily complicated vocabulary"  # 38 characters spoken in one second
    words = [
        TimedWord(i / 3, (i + 1) / 3, (" " if i else "") + w, "English") for i, w in enumerate(text.split())
    ]
    (cue,) = build_cues(words)
    assert cue.end == pytest.approx(len(text) / 20.0, abs=1e-3)
    zh = "我们明天早上一起去公园散步然后回家吃饭"  # 19 characters in 0.95 s
    (cue,) = build_cues([TimedWord(i * 0.05, i * 0.05 + 0.05, ch, "Chinese") for i, ch in enumerate(zh)])
    assert cue.end == pytest.approx(len(zh) / 9.0, abs=1e-3)
    # never beyond the 7 s maximum for the sake of reading speed
    (cue,) = build_cues([TimedWord(0.0, 0.5, "x" * 200, "English")])
    assert cue.end == pytest.approx(7.0)


def test_korean_lines_are_16_full_width_characters():
    sentence = "오늘은 날씨가 정말 좋아서 우리는 공원에 산책하러 가기로 했습니다 그리고 저녁에는 함께 맛있는 음식을 먹었어요"
    words = [
        TimedWord(i * 0.4, i * 0.4 + 0.35, (" " if i else "") + w, "Korean")
        for i, w in enumerate(sentence.split())
    ]
    rules = rules_for("Korean")
    assert (rules.max_line_chars, rules.max_chars_per_second, rules.cjk) == (16, 12, True)
    cues = build_cues(words)
    check_common(cues, rules, words)
    assert " ".join(cues_text(cues)).split() == sentence.split()  # words keep their spaces
    lines = [line for c in cues for line in c.lines]
    assert max(width(line, True) for line in lines) > 12  # lines are filled, not cut at English widths...
    assert all(width(line, True) <= 16 for line in lines)  # ...and never past 16 Hangul
    assert width(sentence, False) / 42 < len(lines) - 1  # far more lines than at 42 Latin characters


def test_short_fragments_join_the_next_cue():
    """Two short sentences said without a pause share a cue (each alone would flash by in under 0.833 s);
    after a pause, or when the pair would not fit, they stay apart."""
    said = [
        TimedWord(0.0, 0.3, "Yes.", "English"),
        TimedWord(0.35, 0.6, " Sure.", "English"),
        TimedWord(0.65, 1.1, " Let's go.", "English"),
    ]
    assert cues_text(build_cues(said)) == ["Yes. Sure. Let's go."]
    paused = [said[0], *(TimedWord(w.start + 1.0, w.end + 1.0, w.word, w.language) for w in said[1:])]
    assert cues_text(build_cues(paused)) == ["Yes.", "Sure. Let's go."]
    long = TimedWord(0.35, 3.0, " " + "word " * 20 + "end.", "English")  # with it the cue would overflow
    assert cues_text(build_cues([said[0], long])) == ["Yes.", long.word.strip()]

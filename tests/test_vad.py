"""Silero VAD (engine/vad.py): the trained model shipped in the package, run by onnxruntime, on espeak-ng
speech placed among noise and silence (tests/fixtures/trained/speech.py talk: exact word times)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qwen3asr_plugin.engine.vad import (
    MODEL,
    WINDOW_SECONDS,
    SileroVad,
    SpeechTracker,
    VadOptions,
    speech_regions,
)
from tests.fixtures.trained import speech


@pytest.fixture(scope="module")
def placed():
    """English, noise, Mandarin, silence: 56 s with every spoken unit's true times."""
    talk = speech.talk([("English", 25), ("noise", 6), ("Chinese", 20), ("silence", 5)], seed=3)
    return talk, list(SileroVad().scores([talk.audio]))


def truth(talk, gap: float) -> list[tuple[float, float]]:
    """Where speech was placed: the spoken units' spans, joined across pauses shorter than `gap`."""
    out: list[list[float]] = []
    for _, w in talk.words:
        if out and w.start - out[-1][1] < gap:
            out[-1][1] = max(out[-1][1], w.end)
        else:
            out.append([w.start, w.end])
    return [(a, b) for a, b in out]


@pytest.mark.parametrize("gap", [0.5, 1.0, 2.0])
def test_speech_is_found_within_200_ms_of_where_it_was_placed(placed, gap):
    talk, scores = placed
    found = speech_regions(scores, VadOptions(speech_pad_seconds=0.0, min_silence_seconds=gap), talk.seconds)
    expected = truth(talk, gap)
    assert len(found) == len(expected) >= 3
    for (a, b), (x, y) in zip(expected, found, strict=True):
        assert abs(x - a) <= 0.2 and abs(y - b) <= 0.2, ((a, b), (x, y))  # measured: at most 0.104 s


def test_noise_and_silence_are_not_speech(placed):
    talk, scores = placed
    found = speech_regions(scores, VadOptions(), talk.seconds)  # faster-whisper's defaults, padded 0.4 s
    for kind, a, b in talk.sections:
        if kind in ("noise", "silence"):
            inside = [(x, y) for x, y in found if x < b - 0.5 and y > a + 0.5]
            assert not inside, (kind, a, b, inside)


def test_scores_do_not_depend_on_how_the_audio_is_cut(placed):
    """Streaming over blocks of any size gives the scores of one pass (memory stays flat on long inputs)."""
    talk, scores = placed
    audio = talk.audio[: 16_000 * 12]
    one = list(SileroVad().scores([audio]))
    for size in (777, 16_000, 160_000):
        cut = list(SileroVad().scores(audio[i : i + size] for i in range(0, audio.size, size)))
        assert cut == pytest.approx(one, abs=1e-6)
    assert one == pytest.approx(scores[: len(one)], abs=1e-6)
    assert len(one) == int(np.ceil(audio.size / 512))


def test_scores_are_the_models_as_its_own_wrapper_feeds_it(placed):
    """The call sequence of silero_vad/utils_vad.py (OnnxWrapper.__call__, 6.2.3), replayed here on its own:
    each 512-sample window after the previous window's last 64 samples, the state carried, sr 16000."""
    import onnxruntime as ort

    talk, scores = placed
    session = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    state, context, expected = np.zeros((2, 1, 128), np.float32), np.zeros((1, 64), np.float32), []
    for at in range(0, 512 * 400, 512):
        x = np.concatenate([context, talk.audio[None, at : at + 512]], axis=1)
        out, state = session.run(None, {"input": x, "state": state, "sr": np.array(16000, np.int64)})
        context = x[:, -64:]
        expected.append(float(out[0, 0]))
    assert scores[:400] == pytest.approx(expected, abs=1e-5)
    assert max(expected) > 0.9 and min(expected) < 0.1  # speech and pauses both in these 12.8 s


def test_region_rules_on_crafted_scores():
    w = WINDOW_SECONDS
    scores = [0.0] * 10 + [0.9] * 20 + [0.4] * 40 + [0.9] * 5 + [0.1] * 100 + [0.6] * 3 + [0.0] * 100
    # hysteresis: 0.4 is above the negative threshold (0.35), so the first region runs on through 1.28 s of it
    found = speech_regions(scores, VadOptions(speech_pad_seconds=0.0, min_silence_seconds=1.0))
    assert found == [(round(10 * w, 3), round(75 * w, 3)), (round(175 * w, 3), round(178 * w, 3))]
    # a minimum speech duration drops the 96 ms blip; padding never crosses into the neighbour
    assert speech_regions(
        scores, VadOptions(speech_pad_seconds=0.0, min_speech_seconds=0.25, min_silence_seconds=1.0)
    ) == [(round(10 * w, 3), round(75 * w, 3))]
    near = [0.9] * 10 + [0.0] * 40 + [0.9] * 10 + [0.0] * 5
    padded = speech_regions(near, VadOptions(speech_pad_seconds=1.0, min_silence_seconds=0.5))
    assert padded == [
        (0.0, round(30 * w, 3)),
        (round(30 * w, 3), round(65 * w, 3)),
    ]  # split halfway; ends kept


def test_the_model_ships_with_its_licence():
    assert MODEL.is_file() and MODEL.stat().st_size > 2_000_000
    licence = (MODEL.parent / "SILERO_VAD_LICENSE").read_text(encoding="utf-8")
    assert "MIT License" in licence and "Silero Team" in licence


def whole_stream_regions(scores, options: VadOptions, duration: float) -> list[tuple[float, float]]:
    """The region rules applied to a whole list of scores at once, written out plainly: the reference the
    streaming SpeechTracker (which must decide as the scores arrive) is checked against."""
    low = options.neg_threshold if options.neg_threshold is not None else max(options.threshold - 0.15, 0.01)
    regions, start, quiet = [], None, None
    for i, score in enumerate(scores):
        t = i * WINDOW_SECONDS
        if start is None:
            if score >= options.threshold:
                start, quiet = t, None
        elif score >= low:
            quiet = None
        else:
            quiet = t if quiet is None else quiet
            if t + WINDOW_SECONDS - quiet >= options.min_silence_seconds - 1e-9:
                regions.append((start, quiet))
                start = quiet = None
    if start is not None:
        regions.append((start, quiet if quiet is not None else duration))
    regions = [r for r in regions if r[1] - r[0] >= max(options.min_speech_seconds, WINDOW_SECONDS) - 1e-9]
    pad, out = options.speech_pad_seconds, []
    for i, (a, b) in enumerate(regions):
        first = max(a - pad, (regions[i - 1][1] + a) / 2 if i else 0.0)
        last = min(b + pad, (b + regions[i + 1][0]) / 2 if i + 1 < len(regions) else duration)
        out.append((first, last))
    return out


@settings(max_examples=300, deadline=None)
@given(
    runs=st.lists(st.tuples(st.floats(0, 1), st.integers(1, 60)), min_size=0, max_size=30),
    min_silence=st.sampled_from([0.032, 0.1, 0.5, 2.0]),
    min_speech=st.sampled_from([0.0, 0.25, 1.0]),
    pad=st.sampled_from([0.0, 0.1, 0.4, 1.5]),
    tail=st.integers(0, 511),
)
def test_streaming_regions_are_the_whole_stream_rules(runs, min_silence, min_speech, pad, tail):
    """The tracker gives out each region as soon as it is final (before the stream ends), and what it gives
    is what the rules say for the whole stream: neighbours closer than two pads split the gap, short regions
    drop without moving their neighbours' pads."""
    scores = [score for score, count in runs for _ in range(count)]
    options = VadOptions(
        min_silence_seconds=min_silence, min_speech_seconds=min_speech, speech_pad_seconds=pad
    )
    duration = (max(len(scores) - 1, 0) * 512 + (tail or 512)) / 16_000
    expected = whole_stream_regions(scores, options, duration)
    found = speech_regions(scores, options, duration)
    assert len(found) == len(expected)
    assert [t for r in found for t in r] == pytest.approx([t for r in expected for t in r], abs=1.5e-3)


def test_a_region_is_given_out_once_final_not_at_the_end_of_the_stream():
    """Streaming: the chunker can transcribe a region while the rest of an hour is still being read."""
    options = VadOptions(min_silence_seconds=0.5, speech_pad_seconds=0.4)
    scores = [0.9] * 30 + [0.0] * 2000 + [0.9] * 30 + [0.0] * 10
    tracker, given = SpeechTracker(options), []
    for i, score in enumerate(scores):
        given += [(i, region) for region in tracker.push(score)]
    assert len(given) == 1 and given[0][1] == (0, 30 * 512 + 6400)
    # its end pad is final 2 pads after the speech: 0.96 s + 0.8 s = window 55
    assert given[0][0] == 30 + round(0.8 / WINDOW_SECONDS)
    assert tracker.finish() == [(2030 * 512 - 6400, 2060 * 512 + 5120)]  # the end pad stops at the end


def test_the_command_line_settings_reach_the_run_and_bad_ones_are_one_line():
    """`--vad/--no-vad` and the four knobs, as `qwen3asr transcribe` (and serve, and the hosts) parse them."""
    from qwen3asr_plugin.cli import build_parser
    from qwen3asr_plugin.engine.errors import Qwen3ASRError
    from qwen3asr_plugin.engine.vad import vad_options
    from qwen3asr_plugin.options import run_options

    parse = build_parser().parse_args
    default = run_options(parse(["transcribe", "a.wav"]))
    assert default.vad_filter is True and default.vad_parameters is None
    assert run_options(parse(["transcribe", "a.wav", "--no-vad"])).vad_filter is False
    knobs = [
        "--vad-threshold",
        "0.6",
        "--vad-min-silence",
        "1",
        "--vad-min-speech",
        "0.25",
        "--vad-pad",
        "0.2",
    ]
    run = run_options(parse(["transcribe", "a.wav", *knobs]))
    assert vad_options(run.vad_parameters) == VadOptions(0.6, None, 0.25, 1.0, 0.2)
    served = run_options(parse(["serve", "--no-vad", "--vad-pad", "0.1"]))
    assert served.vad_filter is False and served.vad_parameters == {"speech_pad_seconds": 0.1}
    for bad in ({"threshold": 1.5}, {"speech_pad_seconds": -1}, {"pad": 0.3}):
        with pytest.raises(Qwen3ASRError) as error:
            vad_options(bad)
        assert "\n" not in str(error.value)


def ffmpeg_sound(source: str, seconds: float) -> np.ndarray:
    """`seconds` of one of ffmpeg's generators (lavfi), 16 kHz mono float32."""
    import subprocess

    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", source, "-t", str(seconds)]
        + ["-ar", "16000", "-ac", "1", "-f", "f32le", "-"],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, np.float32).copy()


@pytest.mark.skipif(not __import__("shutil").which("ffmpeg"), reason="tests/run.sh installs ffmpeg")
def test_speech_among_ffmpeg_made_music_and_noise_is_found_within_200_ms():
    """English, a chord that changes every half second (music-like), Mandarin, pink noise, English: each
    stretch of speech found within 200 ms of where it was placed, nothing found in the chords or the noise."""
    # (a lower chord, 196-343 Hz, is taken for speech for 3.3 s after the talk: README, Transcribe)
    chords = "aevalsrc=0.2*sin(2*PI*(523+131*floor(mod(2*t\\,4)))*t)+0.1*sin(2*PI*784*t)+0.1*sin(2*PI*1047*t)"
    parts = [
        ("speech", speech.talk([("English", 12)], seed=21)),
        ("music", ffmpeg_sound(chords + ":s=16000", 8)),
        ("speech", speech.talk([("Chinese", 10)], seed=22)),
        ("noise", ffmpeg_sound("anoisesrc=color=pink:amplitude=0.3:r=16000", 6)),
        ("speech", speech.talk([("English", 8)], seed=23)),
    ]
    audio, placed, quiet, at = [], [], [], 0.0
    for kind, part in parts:
        if kind == "speech":
            placed += [(at + a, at + b) for a, b in truth(part, 2.0)]
            part = part.audio
        else:
            quiet.append((at, at + part.size / 16_000))
        audio.append(part)
        at += part.size / 16_000
    found = speech_regions(
        SileroVad().scores([np.concatenate(audio)]), VadOptions(speech_pad_seconds=0.0), at
    )
    assert len(found) == len(placed), (found, placed)
    for (a, b), (x, y) in zip(placed, found, strict=True):
        assert abs(x - a) <= 0.2 and abs(y - b) <= 0.2, ((a, b), (x, y))
    for a, b in quiet:
        assert not [(x, y) for x, y in found if x < b - 0.2 and y > a + 0.2], (a, b)


def test_a_region_waiting_for_its_end_pad_is_not_held_by_a_long_one_after_it():
    """With min_silence under two pads, a region that starts within two pads of the previous one would hold
    that one (and, in the chunker, all the audio after it) until it ends: it is given out, split halfway,
    as soon as the next region is sure to be kept."""
    options = VadOptions(min_silence_seconds=0.5, speech_pad_seconds=0.4)
    scores = [0.9] * 50 + [0.0] * 16 + [0.9] * 6000 + [0.0] * 20
    tracker, given = SpeechTracker(options), []
    for i, score in enumerate(scores):
        given += [(i, region) for region in tracker.push(score)]
    assert given and given[0][0] < 70, given[:1]  # not after the 6000 windows (192 s) of the next one
    whole = speech_regions(scores, options)
    assert [r for _, r in given] + tracker.finish() == [
        (round(a * 16_000), round(b * 16_000)) for a, b in whole
    ] or len(whole) == 2

"""Silero VAD (engine/vad.py): the trained model shipped in the package, run by onnxruntime, on espeak-ng
speech placed among noise and silence (tests/fixtures/trained/speech.py talk: exact word times)."""

from __future__ import annotations

import numpy as np
import pytest

from qwen3asr_plugin.engine.vad import MODEL, WINDOW_SECONDS, SileroVad, VadOptions, speech_regions
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

"""The synthesized speech the small trained models learn from: exact word times, deterministic, disjoint
training and held-out splits, text written the way the model should write it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.fixtures.trained import speech

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="tests/run.sh installs espeak-ng")
SR = speech.SAMPLE_RATE


def test_word_times_are_exact():
    """In a clean utterance every word's span holds its sound and every gap between words is silent."""
    rng = np.random.default_rng(5)
    voice = speech.Voice("English", "m3", 160, 50)
    u = speech.utterance(["market", "river", "seven", "happy"], voice, rng)
    assert [w.word for w in u.words] == ["market", "river", "seven", "happy"]
    for w in u.words:
        span = u.audio[int(round(w.start * SR)) : int(round(w.end * SR))]
        assert span.size > 0.1 * SR and np.abs(span).max() > 0.05
        # The first and last few milliseconds of the span are sound, not padding.
        assert np.abs(span[: SR // 200]).max() > 0.002 and np.abs(span[-SR // 200 :]).max() > 0.002
    for before, after in zip(u.words[:-1], u.words[1:], strict=True):
        gap = u.audio[int(round(before.end * SR)) + 1 : int(round(after.start * SR)) - 1]
        assert gap.size > 0 and np.abs(gap).max() == 0.0
    assert np.abs(u.audio[: int(u.words[0].start * SR) - 1]).max() == 0.0
    assert u.text == "Market river seven happy."


def test_chinese_is_timed_per_character_and_written_without_spaces():
    rng = np.random.default_rng(2)
    u = speech.utterance(["我", "们", "喝", "茶"], speech.Voice("Chinese", "f2", 150, 50), rng)
    assert u.text == "我们喝茶。" and [w.word for w in u.words] == ["我", "们", "喝", "茶"]
    starts = [w.start for w in u.words]
    assert starts == sorted(starts) and all(w.end > w.start for w in u.words)


def test_the_same_seed_gives_the_same_samples():
    a = list(speech.dataset("heldout", 4))
    b = list(speech.dataset("heldout", 4))
    assert [x.text for x in a] == [y.text for y in b]
    assert all(np.array_equal(x.audio, y.audio) for x, y in zip(a, b, strict=True))
    assert [x.language for x in a] == ["English", "Chinese", "English", "Chinese"]


def test_training_and_held_out_splits_share_no_voice_setting_or_sentences():
    for language in ("English", "Chinese"):
        train, heldout = speech.voices("train", language), speech.voices("heldout", language)
        assert not {v.variant for v in train} & {v.variant for v in heldout}
        assert not {v.speed for v in train} & {v.speed for v in heldout}
        assert not {v.pitch for v in train} & {v.pitch for v in heldout}
    train = {u.text for u in speech.dataset("train", 30)}
    heldout = {u.text for u in speech.dataset("heldout", 30)}
    assert not train & heldout


def test_noise_is_mixed_in_at_the_asked_level():
    rng = np.random.default_rng(9)
    voice = speech.Voice("English", "f1", 150, 50)
    clean = speech.utterance(["water", "fire"], voice, np.random.default_rng(9))
    noisy = speech.utterance(["water", "fire"], voice, rng, snr_db=20.0)
    noise = noisy.audio - clean.audio
    signal = clean.audio[clean.audio != 0]
    snr = 10 * np.log10(np.mean(signal**2) / np.mean(noise**2))
    assert snr == pytest.approx(20.0, abs=0.5)


def test_command_writes_audio_and_truth(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "tests.fixtures.trained.speech", "--out", str(tmp_path), "--count", "2"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    truth = json.loads((tmp_path / "truth.json").read_text(encoding="utf-8"))
    assert [t["language"] for t in truth] == ["English", "Chinese"]
    from scipy.io import wavfile

    rate, audio = wavfile.read(tmp_path / truth[1]["file"])
    assert rate == SR and truth[1]["words"][-1][1] <= audio.size / SR


def test_a_curriculum_caps_sentence_length():
    from tests.fixtures.trained.train import Plan, curriculum

    short = list(speech.dataset("train", 6, longest=lambda i: 2))
    assert all(1 <= len(u.words) <= 2 for u in short)
    plan = curriculum(encoder_steps=40, steps=140)
    assert plan(0) == Plan(None, 1) and plan(39) == Plan(None, 1)  # the encoder's phase: single sentences
    assert plan(40) == Plan(2, 1) and plan(49) == Plan(2, 1)  # the decoder's first tenth: one or two units
    assert plan(60) == Plan(7, 1) and plan(70) == Plan(None, 1)  # growing, then full sentences
    assert plan(85) == Plan(None, 4) and plan(100) == Plan(None, 8) and plan(139) == Plan(None, 8)


def test_joined_sentences_keep_exact_times_and_one_language():
    rng = np.random.default_rng(4)
    stream = speech.dataset("train", 100, seed=5)
    for _ in range(6):
        u = speech.joined(rng, stream, 4)
        assert all(speech.is_cjk_character(w.word) == (u.language == "Chinese") for w in u.words)
        starts = [w.start for w in u.words]
        assert starts == sorted(starts)
        first = u.words[0]  # spoken by u.voice, where its times say (later sentences have their own voices)
        piece = speech.speak(first.word, u.voice)
        span = u.audio[int(round(first.start * SR)) : int(round(first.start * SR)) + piece.size]
        assert span.size == piece.size and np.corrcoef(span, piece)[0, 1] > 0.9
        assert all(np.abs(u.audio[int(w.start * SR) + 1 : int(w.end * SR)]).max() > 0.05 for w in u.words)
        assert u.words[-1].end < u.seconds
        joiner = "" if u.language == "Chinese" else " "
        assert u.text.count("." if u.language == "English" else "。") >= 1 and joiner in u.text


def test_padding_moves_the_words_with_the_speech():
    """speech.padded (what train.py's --lead adds): the same samples, later by the lead; the times move with
    them; the text is untouched."""
    rng = np.random.default_rng(11)
    stream = speech.dataset("train", 100, seed=6)
    leads = []
    for _ in range(12):
        u = next(stream)
        p = speech.padded(rng, u, 6.0, 3.0)
        near = int(round((p.words[0].start - u.words[0].start) * SR))  # times are kept to 0.1 ms
        lead = next(
            n
            for n in range(max(0, near - 2), near + 3)
            if np.array_equal(p.audio[n : n + u.audio.size], u.audio)
        )
        leads.append(lead / SR)
        assert lead <= 6 * SR and p.audio.size - u.audio.size - lead <= 3 * SR
        for a, b in zip(p.words, u.words, strict=True):
            assert a.word == b.word and abs((a.start - b.start) - lead / SR) < 2e-4
            assert abs((a.end - b.end) - lead / SR) < 2e-4
        assert (p.text, p.language, p.voice) == (u.text, u.language, u.voice)
    assert min(leads) == 0.0 and max(leads) > 2.0  # some with nothing before, some with seconds


def test_one_call_speaks_the_whole_vocabulary_cut_at_the_breaks():
    """`vocabulary` cuts one espeak-ng call into units: one piece per unit, in order (a piece shifted by one
    would not follow the lengths of the units spoken alone), and each is sound from end to end."""
    voice = speech.Voice("English", "f3", 150, 50)
    pieces = speech.vocabulary(voice)
    assert list(pieces) == speech.ENGLISH_WORDS
    sample = speech.ENGLISH_WORDS[::9]
    cut = np.array([pieces[w].size for w in sample], float)
    alone = np.array([speech.speak_alone(w, voice).size for w in sample], float)
    assert np.corrcoef(cut, alone)[0, 1] > 0.8
    assert np.corrcoef(cut[1:], alone[:-1])[0, 1] < 0.5  # what a cut one unit off would give
    assert all(np.abs(p[:80]).max() > 0.005 and np.abs(p[-80:]).max() > 0.005 for p in pieces.values())
    chinese = speech.vocabulary(speech.Voice("Chinese", "m2", 165, 65))
    assert list(chinese) == speech.CHINESE_CHARACTERS


def test_no_speech_is_silence_noise_or_music_with_nothing_to_write():
    """What the model learns to answer `language None` for: no words, no text, audio at the asked length;
    the music is tonal (a few strong frequencies), the noise is not; the same seed gives the same audio."""
    rng = np.random.default_rng(8)
    samples = [speech.no_speech(rng, 2.5) for _ in range(9)]
    assert all(u.text == "" and u.language == "None" and not u.words for u in samples)
    assert all(u.audio.size == int(2.5 * SR) and u.audio.dtype == np.float32 for u in samples)
    assert {round(float(np.abs(u.audio).max()), 3) > 0.01 for u in samples} == {True, False}  # silence too

    def flatness(x):  # spectral flatness: near 1 for white noise, near 0 for a few tones
        p = np.abs(np.fft.rfft(x[:8192])) ** 2 + 1e-12
        return float(np.exp(np.mean(np.log(p))) / np.mean(p))

    tones = speech.music(np.random.default_rng(1), 2.0, 0.3)
    hiss = speech.noise(np.random.default_rng(3), 2.0, 0.3)
    assert abs(float(np.abs(tones).max()) - 0.3) < 1e-3 and abs(float(np.abs(hiss).max()) - 0.3) < 1e-3
    assert flatness(tones[:8192]) < 0.05 < flatness(np.random.default_rng(0).normal(size=8192))
    again = speech.no_speech(np.random.default_rng(8), 2.5)
    assert np.array_equal(again.audio, samples[0].audio)

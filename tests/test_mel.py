"""Mel parity with transformers' WhisperFeatureExtractor(feature_size=128): max abs difference within 1e-4."""

import numpy as np
import pytest
from transformers import WhisperFeatureExtractor

from qwen3asr_plugin.engine.errors import AudioError
from qwen3asr_plugin.engine.mel import MelConfig, log_mel, mel_filters, num_frames
from tests.parity import speech_like


def reference_mel(x: np.ndarray) -> np.ndarray:
    fe = WhisperFeatureExtractor(feature_size=128)
    out = fe(
        x,
        sampling_rate=16000,
        padding=True,
        truncation=False,
        return_attention_mask=True,
        return_tensors="np",
    )
    return out["input_features"][0][:, : int(out["attention_mask"][0].sum())]


@pytest.mark.parametrize("n_samples", [201, 1_600, 8_000, 16_000 * 3 + 77, 16_000 * 31 + 5])
def test_matches_whisper_feature_extractor(n_samples):
    x = speech_like(n_samples, seed=n_samples)
    ours = log_mel(x)
    ref = reference_mel(x)
    assert ours.shape == ref.shape == (128, n_samples // 160)
    assert ours.dtype == np.float32
    assert np.abs(ours - ref).max() <= 1e-4


def test_loud_and_silent_input_match_reference():
    rng = np.random.default_rng(0)
    loud = np.clip(rng.standard_normal(16_000) * 3.0, -1, 1).astype(np.float32)
    silent = np.zeros(16_000, np.float32)
    for x in (loud, silent):
        assert np.abs(log_mel(x) - reference_mel(x)).max() <= 1e-4


def test_filters_are_slaney_normalised_triangles():
    f = mel_filters(MelConfig())
    assert f.shape == (201, 128)
    assert (f >= 0).all()
    # every filter has a single peak and some support
    assert ((f > 0).sum(axis=0) >= 1).all()


def test_frame_count_and_empty_input():
    assert num_frames(16_000) == 100
    assert log_mel(np.zeros(159, np.float32)).shape == (128, 0)
    with pytest.raises(AudioError):
        log_mel(np.zeros(0, np.float32))

"""Training a small Qwen3-ASR here: the training script writes a checkpoint in the official layout that
transformers loads strictly and our converter and engine take; the held-out scoring counts errors right."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tests.fixtures.trained import speech
from tests.fixtures.trained.evaluate import edit_distance, units

espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="tests/run.sh installs espeak-ng")


def test_edit_distance_and_scored_units():
    assert edit_distance(["a", "b", "c"], ["a", "c"]) == 1
    assert edit_distance(["a", "b"], ["x", "a", "b", "y"]) == 2
    assert edit_distance([], ["a"]) == 1 and edit_distance(["a"], ["a"]) == 0
    assert units("Market, build family.", "English") == ["market", "build", "family"]
    assert units("我们喝茶。", "Chinese") == ["我", "们", "喝", "茶"]


@espeak
def test_training_writes_an_official_checkpoint_that_converts_and_runs(tmp_path):
    from safetensors import safe_open

    from qwen3asr_plugin import ASRModel
    from qwen3asr_plugin.engine.convert import convert
    from tests.fixtures.trained.train import new_checkpoint, train
    from tests.reference import reference_model

    lines: list[str] = []
    folder = train(
        tmp_path / "ckpt", steps=3, minutes=5, batch_size=2, seed=0, lr=1e-3, log=lines.append, save_every=2
    )
    assert lines[0].startswith("step      1  loss ") and lines[-1].startswith("trained 3 steps")
    assert "saved the weights of step 2" in lines and not list(folder.glob("*.partial"))

    fresh = new_checkpoint(tmp_path / "random", seed=0)
    with (
        safe_open(str(folder / "model.safetensors"), "np") as f,
        safe_open(str(fresh / "model.safetensors"), "np") as g,
    ):
        assert list(f.keys()) == list(g.keys())  # the official names, nothing more or less
        name = "thinker.model.layers.0.mlp.up_proj.weight"
        assert f.get_tensor(name).dtype == g.get_tensor(name).dtype  # bf16 as published
        assert not np.array_equal(f.get_tensor(name), g.get_tensor(name))  # trained, not the random draw
    reference_model(folder)  # transformers' native classes load it strictly

    model = ASRModel(convert(folder, tmp_path / "model", decoder_quants=["f32"]), aligner=False, device="cpu")
    utterance = next(speech.dataset("heldout", 1))
    segments, info = model.transcribe(utterance.audio)
    list(segments)
    assert info.duration == pytest.approx(utterance.seconds, abs=0.01)

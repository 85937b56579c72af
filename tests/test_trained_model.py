"""Training a small Qwen3-ASR here: the training script writes a checkpoint in the official layout that
transformers loads strictly and our converter and engine take; the held-out scoring counts errors right."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path

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
        tmp_path / "ckpt",
        steps=3,
        minutes=5,
        batch_size=2,
        seed=0,
        lr=1e-3,
        log=lines.append,
        save_every=2,
        encoder_steps=1,
        guided=1.0,
        lead=3.0,  # speech.padded in the batches
    )
    assert lines[0].startswith("step      1  loss   -    frames ")  # the encoder's phase
    assert lines[-1].startswith("trained 3 steps")
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


@espeak
def test_frame_labels_name_the_unit_spoken_at_each_audio_token():
    """The training-only frame labels: the token of the word spoken at each audio token's centre (tokens of
    1000/13 ms, 13 per 100-frame chunk), `<|audio_pad|>` in the gaps; beside them the answer's token just
    before that word (`<asr_text>` before the first; "Market", capitalised, before the second), unscored
    (-100) in the gaps."""
    from tests.fixtures.trained.train import Trainer, new_checkpoint

    trainer = Trainer(new_checkpoint(Path(tempfile.mkdtemp()) / "c", seed=0), seed=0)
    rng = np.random.default_rng(3)
    u = speech.utterance(["market", "river", "seven"], speech.Voice("English", "m1", 150, 50), rng, 0.6)
    mel, prompt, answer, labels, previous, guide = trainer.example(u)
    assert len(labels) == prompt.count(trainer.ids["audio_pad"])
    pad = trainer.ids["audio_pad"]
    for word in u.words:
        unit = trainer.encode(" " + word.word)
        assert len(unit) == 1  # every vocabulary word is one token
        spoken = [i for i, label in enumerate(labels) if label == unit[0]]
        centres = [(i // 13 + 8 * (i % 13) / 100) for i in spoken]
        assert spoken == list(range(spoken[0], spoken[-1] + 1))  # one run
        assert word.start <= min(centres) < word.start + 0.08 and word.end - 0.08 < max(centres) < word.end
    assert labels[: int(0.6 * 13) - 1] == [pad] * (int(0.6 * 13) - 1)  # the lead-in silence
    assert answer[-1] == trainer.ids["im_end"] and trainer.tokenizer.decode(answer[:-1]).endswith(u.text)
    before = [trainer.ids["asr_text"], *trainer.encode("Market"), *trainer.encode(" river")]
    assert len(previous) == len(labels)
    for i, label in enumerate(labels):
        if label == pad:
            assert previous[i] == -100
        else:
            assert previous[i] == before[[trainer.encode(" " + w.word)[0] for w in u.words].index(label)]
    # The guide: from the token read just before each word, to the audio tokens the word is spoken in.
    sequence = prompt + answer
    assert [trainer.tokenizer.decode(sequence[q + 1]).strip().lower() for q, _ in guide] == [
        "market",
        "river",
        "seven",
    ]
    for (_, keys), word in zip(guide, u.words, strict=True):
        assert [labels[k - prompt.index(pad)] for k in keys] == [trainer.encode(" " + word.word)[0]] * len(
            keys
        )
        assert len(keys) == labels.count(trainer.encode(" " + word.word)[0])
    twice = dataclasses.replace(u, text=f"{u.text} {u.text}", words=u.words * 2)  # as speech.joined writes
    assert trainer.previous_tokens(twice) == before + trainer.encode(".") + trainer.encode(" Market river")


def test_guide_loss_is_small_only_where_the_head_looks_at_the_guided_keys():
    import torch

    from tests.fixtures.trained.train import guide_loss

    guide = torch.tensor([(0, 5, 1), (0, 5, 2), (1, 6, 3)])
    looking = torch.zeros(2, 8, 8)
    looking[0, 5, 1] = looking[0, 5, 2] = 0.5
    looking[1, 6, 3] = 1.0
    assert float(guide_loss(looking, guide)) < 1e-5
    uniform = torch.full((2, 8, 8), 1 / 8)
    assert abs(float(guide_loss(uniform, guide)) - (np.log(4) + np.log(8)) / 2) < 1e-4
    elsewhere = torch.zeros(2, 8, 8)
    elsewhere[:, :, 0] = 1.0
    assert float(guide_loss(elsewhere, guide)) > 10


@espeak
def test_aligner_training_writes_an_official_aligner_that_converts_and_times_words(tmp_path):
    """align.py from a small ASR checkpoint: the official aligner names (its lm_head scores time classes), trained
    weights, and a model our converter and Aligner take, one time pair per unit."""
    from safetensors import safe_open

    from qwen3asr_plugin import Aligner
    from qwen3asr_plugin.engine.convert import convert
    from tests.fixtures.trained import align
    from tests.fixtures.trained.train import new_checkpoint

    asr = new_checkpoint(tmp_path / "asr", seed=0)
    lines: list[str] = []
    folder = align.train(
        asr, tmp_path / "aligner", steps=2, minutes=5, batch_size=2, log=lines.append, workers=0, lead=6.0
    )
    assert lines[0].startswith("step      1  loss ") and lines[-1].startswith("trained ")
    fresh = align.new_checkpoint(tmp_path / "random", seed=0)
    with (
        safe_open(str(folder / "model.safetensors"), "np") as f,
        safe_open(str(fresh / "model.safetensors"), "np") as g,
    ):
        assert list(f.keys()) == list(g.keys())
        assert f.get_tensor("thinker.lm_head.weight").shape[0] == align.CLASSES  # the official score head
        name = "thinker.model.layers.1.self_attn.q_proj.weight"
        assert not np.array_equal(f.get_tensor(name), g.get_tensor(name))
    model = convert(folder, tmp_path / "converted", encoder_precisions=("fp32",), decoder_quants=("f32",))
    u = next(speech.dataset("heldout", 1))
    words = [
        w
        for w in Aligner(model, device="cpu").align(u.audio, u.text, language=u.language)
        if w.word.strip(" .。")
    ]
    assert len(words) == len(u.words)
    assert all(0 <= w.start <= w.end <= u.seconds for w in words)


def test_a_continued_run_trains_only_the_new_heads_first(tmp_path):
    """train.py --init with --head-steps: the training-only heads (not saved with a checkpoint) learn alone
    first, so the saved weights are the started-from ones, bit for bit, until those steps are done."""
    from safetensors import safe_open

    from tests.fixtures.trained.train import train

    start = Path(__file__).parent / "fixtures" / "trained" / "asr"
    lines: list[str] = []
    folder = train(
        tmp_path / "ckpt",
        steps=2,
        minutes=5,
        batch_size=2,
        seed=0,
        lr=1e-3,
        log=lines.append,
        init=start,
        head_steps=2,
        guided=1.0,
        lead=2.0,
    )
    assert lines[0] == f"started from the weights in {start}" and lines[-1].startswith("trained ")
    with (
        safe_open(str(folder / "model.safetensors"), "np") as f,
        safe_open(str(start / "model.safetensors"), "np") as g,
    ):
        names = list(f.keys())
        assert names == list(g.keys())
        changed = [name for name in names if not np.array_equal(f.get_tensor(name), g.get_tensor(name))]
    assert changed == []

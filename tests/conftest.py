"""Shared fixtures: random-weight checkpoints in two geometries, converted once per test session."""

from __future__ import annotations

import os
import sys

import pytest

from qwen3asr_plugin.engine.convert import convert
from tests.fixtures.checkpoint import make_checkpoint


def pytest_configure(config):
    """Installed third-party plugins stay out of the tests, in process and in the commands they run; the
    plugin tests (tests/test_plugins.py) lift this for their own subprocesses."""
    sys._called_from_test = True
    os.environ["QWEN3ASR_LOAD_PLUGINS"] = ""


# The second geometry: the 0.6B encoder's heads (14 x 64), ffn, conv channels and 8 s windows at reduced depth,
# with a compact vocabulary (special tokens at other ids than the official ones).
HEAD_0_6B = {
    "audio": {"encoder_layers": 2},
    "text": {"num_hidden_layers": 1, "vocab_size": 1088},
    "first_added_id": 1000,
}
# The official vocabulary layout (special tokens from 151643, 151936 embedding rows) on tiny dims.
OFFICIAL_IDS = {
    "audio": {
        "d_model": 32,
        "encoder_layers": 1,
        "encoder_attention_heads": 4,
        "encoder_ffn_dim": 64,
        "downsample_hidden_size": 8,
        "output_dim": 64,
    },
    "text": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 1,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "mrope_section": [4, 2, 2],
    },
}
GEOMETRIES = {
    "tiny": ("tiny", None),
    "0.6b-heads": ("0.6b", HEAD_0_6B),
    "official-ids": ("0.6b", OFFICIAL_IDS),
    # The 0.6B text model at its full depth and width (28 layers, 1024 wide, 16 + 8 heads of 128), fewer
    # vocabulary rows, a reduced 0.6B encoder: errors that grow with depth show here (tests/test_full_depth.py).
    "0.6b-depth": (
        "0.6b",
        {"audio": {"encoder_layers": 2}, "text": {"vocab_size": 1088}, "first_added_id": 1000},
    ),
    "aligner-tiny": ("aligner-tiny", None),
    # The aligner at the official layout: 1024-wide, 16 heads, 152064 rows, ids from 151643, reduced depth;
    # sharper text attention, so that its slots take many classes (with the default weights every slot of a
    # text took the same one or two classes and agreement proved little).
    "aligner-0.6b-heads": (
        "aligner-0.6b",
        {"audio": {"encoder_layers": 1}, "text": {"num_hidden_layers": 2}, "text_qk_gain": 2.0},
    ),
}
SEED = 8


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    """Lazily made checkpoint folders by geometry name."""
    made: dict = {}

    def get(name: str):
        if name not in made:
            preset, overrides = GEOMETRIES[name]
            made[name] = make_checkpoint(
                tmp_path_factory.mktemp(f"ckpt-{name}"), preset, seed=SEED, overrides=overrides
            )
        return made[name]

    return get


@pytest.fixture(scope="session")
def models(tmp_path_factory, checkpoints):
    """Lazily converted model folders (all encoder precisions) by geometry name."""
    made: dict = {}

    def get(name: str):
        if name not in made:
            made[name] = convert(
                checkpoints(name),
                tmp_path_factory.mktemp(f"model-{name}") / "m",
                encoder_precisions=("fp32", "fp16", "int8", "q8"),
                decoder_quants=("f32", "q8_0"),
            )
        return made[name]

    return get


@pytest.fixture(scope="session")
def bf16_models(tmp_path_factory, checkpoints):
    """Lazily converted folders with the bf16 decoder alone (fp32 encoder) by geometry name; kept apart from
    `models` so that the default decoder those tests get does not depend on the CPU."""
    made: dict = {}

    def get(name: str):
        if name not in made:
            made[name] = convert(
                checkpoints(name),
                tmp_path_factory.mktemp(f"bf16-{name}") / "m",
                encoder_precisions=("fp32",),
                decoder_quants=("bf16",),
            )
        return made[name]

    return get


@pytest.fixture(scope="session")
def tiny_checkpoint(checkpoints):
    return checkpoints("tiny")


@pytest.fixture(scope="session")
def tiny_model(models):
    return models("tiny")


@pytest.fixture(scope="session")
def tiny_aligner(models):
    return models("aligner-tiny")

"""Reading safetensors without torch gives exactly what torch reads, bf16 included."""

import numpy as np
import torch
from safetensors.torch import save_file

from qwen3asr_plugin.engine.safetensors_io import SafetensorsFile
from tests.fixtures.safetensors_write import float32_to_bf16_bits


def test_bf16_rounding_matches_torch():
    x = np.random.default_rng(0).standard_normal(10_000).astype(np.float32) * 7
    x[:4] = [0.0, -0.0, 1e-40, 65504.0]
    ours = float32_to_bf16_bits(x)
    theirs = torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    assert np.array_equal(ours, theirs)


def test_reads_what_torch_wrote(tmp_path):
    tensors = {
        "a.bf16": torch.randn(3, 5).to(torch.bfloat16),
        "b.f16": torch.randn(7).half(),
        "c.f32": torch.randn(2, 2, 2),
        "d.i64": torch.arange(6).reshape(2, 3),
    }
    path = tmp_path / "x.safetensors"
    save_file(tensors, str(path))
    f = SafetensorsFile(path)
    assert sorted(f.keys()) == sorted(tensors)
    for name, t in tensors.items():
        got = f.get(name, dtype=np.float64)
        assert got.shape == tuple(t.shape)
        assert np.array_equal(got, t.double().numpy())
    assert f.dtype("a.bf16") == "BF16"

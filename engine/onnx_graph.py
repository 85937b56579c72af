"""A small helper for writing ONNX graphs node by node from NumPy weights (used by conversion)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
_ONNX_FLOAT = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float16): TensorProto.FLOAT16}


Q8_BLOCK = 32  # weights per block of the q8 encoder's MatMulNBits (one scale each, as llama.cpp's q8_0)


def q8_blocks(weight_t: np.ndarray, block: int = Q8_BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """A [K, N] float weight as ONNX Runtime's MatMulNBits takes it with bits=8 (onnxruntime's
    docs/ContribOperators.md, com.microsoft.MatMulNBits): uint8 B [N, ceil(K/block), block] holding
    round(w / scale) + 128 (the default zero point of 8 bits), and float32 scales [N * ceil(K/block)] =
    max |w| / 127 per block."""
    k, n = weight_t.shape
    padded = np.zeros((n, -(-k // block) * block), np.float32)  # a last partial block is zero-padded
    padded[:, :k] = weight_t.T
    blocks = padded.reshape(n, -1, block)
    scale = np.abs(blocks).max(axis=-1) / 127.0
    scale[scale == 0] = 1.0
    q = np.clip(np.rint(blocks / scale[..., None]), -127, 127).astype(np.int16) + 128
    return q.astype(np.uint8), scale.astype(np.float32).reshape(-1)


class GraphBuilder:
    """Collects nodes and initializers; float constants are stored in the graph's compute dtype. With
    `weight_bits=8` the linear layers' weights are stored in 8-bit blocks (MatMulNBits, activations float32):
    a quarter of the memory of float32."""

    def __init__(self, name: str, dtype=np.float32, weight_bits: int | None = None):
        if weight_bits not in (None, 8) or (weight_bits and np.dtype(dtype) != np.float32):
            raise ValueError("weight_bits: None, or 8 with float32 activations")
        self.weight_bits = weight_bits
        self.name = name
        self.dtype = np.dtype(dtype)
        self.onnx_dtype = _ONNX_FLOAT[self.dtype]
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self._count = 0

    def _fresh(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def weight(self, name: str, array: np.ndarray) -> str:
        """A float initializer in the compute dtype."""
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=self.dtype), name))
        return name

    def ints(self, values, name: str | None = None) -> str:
        """An int64 initializer (shapes, axes, pads)."""
        name = name or self._fresh("i64")
        self.initializers.append(numpy_helper.from_array(np.asarray(values, dtype=np.int64), name))
        return name

    def scalar(self, value: float, name: str | None = None) -> str:
        name = name or self._fresh("c")
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=self.dtype), name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, **attrs) -> str:
        out = self._fresh(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def input(self, name: str, elem_type: int, shape: list) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, elem_type, shape))
        return name

    def output(self, value: str, name: str, elem_type: int, shape: list):
        self.nodes.append(helper.make_node("Identity", [value], [name], name=name))
        self.outputs.append(helper.make_tensor_value_info(name, elem_type, shape))

    # Composite operations used by both encoder halves.
    def to_compute(self, value: str) -> str:
        return value if self.dtype == np.float32 else self.op("Cast", [value], to=self.onnx_dtype)

    def to_float32(self, value: str) -> str:
        return value if self.dtype == np.float32 else self.op("Cast", [value], to=TensorProto.FLOAT)

    def gelu(self, x: str) -> str:
        """Exact (erf) GELU, written so that onnxruntime fuses it into one Gelu kernel."""
        scaled = self.op("Div", [x, self.scalar(np.sqrt(2.0))])
        one_plus = self.op("Add", [self.op("Erf", [scaled]), self.scalar(1.0)])
        return self.op("Mul", [self.op("Mul", [x, one_plus]), self.scalar(0.5)], hint="gelu")

    def linear(self, x: str, weight: np.ndarray, bias: np.ndarray | None, name: str) -> str:
        """x @ weight.T + bias, with weight in PyTorch's [out, in] layout."""
        if self.weight_bits == 8:
            n, k = weight.shape
            q, scales = q8_blocks(weight.T)
            self.initializers.append(numpy_helper.from_array(q, name + ".weight_q8"))
            self.initializers.append(numpy_helper.from_array(scales, name + ".weight_scales"))
            y = self.op(
                "MatMulNBits",
                [x, name + ".weight_q8", name + ".weight_scales"],
                hint=name,
                domain="com.microsoft",
                K=k,
                N=n,
                bits=8,
                block_size=Q8_BLOCK,
                accuracy_level=0,  # float32 products: on AVX2 the int8 ones (level 4) ran at half the speed
            )
            if bias is not None:
                y = self.op("Add", [y, self.weight(name + ".bias", bias)], hint=name)
            return y
        y = self.op("MatMul", [x, self.weight(name + ".weight_t", weight.T)], hint=name)
        if bias is not None:
            y = self.op("Add", [y, self.weight(name + ".bias", bias)], hint=name)
        return y

    def layer_norm(self, x: str, weight: np.ndarray, bias: np.ndarray, name: str, eps: float = 1e-5) -> str:
        return self.op(
            "LayerNormalization",
            [x, self.weight(name + ".weight", weight), self.weight(name + ".bias", bias)],
            hint=name,
            axis=-1,
            epsilon=eps,
        )

    def model(self, doc: str, metadata: dict[str, str] | None = None) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, self.initializers)
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)]
            + ([helper.make_opsetid("com.microsoft", 1)] if self.weight_bits else []),
            producer_name="qwen3asr-plugin",
            doc_string=doc,
        )
        model.ir_version = 8  # readable by onnxruntime 1.14 and newer, DirectML builds included
        for key, value in (metadata or {}).items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, str(value)
        onnx.checker.check_model(model)
        return model

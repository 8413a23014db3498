"""The quantizer's round trips on fixed data, each computed once a session: test_quantize.py checks them against
bounds and test_doc_claims.py against docs/quantize.md's table, and the K-quant searches are the slow part."""

import functools
from dataclasses import dataclass

import numpy as np
from gguf import GGMLQuantizationType
from gguf import quants as gguf_quants

from motif_lite.quantize import quantize_tensor


def data(kind: str) -> np.ndarray:
    """32 x 4096 float32 values: "gauss" (standard normal) or "student_t" (3 dof, weight-like scale)."""
    rng = np.random.default_rng(1234)
    if kind == "gauss":
        return rng.standard_normal((32, 4096)).astype(np.float32)
    return (0.02 * rng.standard_t(3, (32, 4096))).astype(np.float32)  # heavy tails, weight-like scale


def rel_rmse(ref: np.ndarray, approx: np.ndarray) -> float:
    return float(np.sqrt(np.mean((approx - ref) ** 2) / np.mean(ref**2)))


def naive_rtn(x: np.ndarray, bits: int, group: int) -> np.ndarray:
    """A naive symmetric absmax round-to-nearest code: 2^bits - 1 levels per group of `group` values."""
    blocks = x.reshape(-1, group)
    amax = np.abs(blocks).max(1, keepdims=True)
    top = 2 ** (bits - 1) - 1
    return (np.round(blocks / amax * top) * amax / top).reshape(x.shape)


@dataclass(frozen=True)
class RoundTrip:
    packed: np.ndarray  # what quantize_tensor wrote for data(kind)
    approx: np.ndarray  # gguf-py's decoding of it (the format's ground truth)


@functools.cache
def round_trip(qtype: GGMLQuantizationType, kind: str) -> RoundTrip:
    packed = quantize_tensor(data(kind), qtype)
    approx = gguf_quants.dequantize(packed, qtype)
    packed.flags.writeable = approx.flags.writeable = False  # shared by every test that asks: none may change it
    return RoundTrip(packed, approx)

"""Bit-for-bit equality of nested checkpoint-like states, for the tests of round trips."""

import struct

import numpy as np
import torch


def same(a, b, where: str = "state") -> None:
    """Assert ``a`` and ``b`` equal in type, structure, key order, dtype, shape and every bit
    (NaN and -0.0 included)."""
    assert type(a) is type(b), (where, type(a), type(b))
    if isinstance(a, torch.Tensor):
        assert (a.dtype, a.shape) == (b.dtype, b.shape), (where, a.dtype, b.dtype, a.shape)
        bits = [t.detach().contiguous().numpy().tobytes() for t in (a, b)]
        assert bits[0] == bits[1], where
    elif isinstance(a, np.ndarray):
        assert (a.dtype, a.shape) == (b.dtype, b.shape), (where, a.dtype, b.dtype, a.shape)
        assert a.tobytes() == b.tobytes(), where
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{where}[{i}]")
    elif isinstance(a, float):
        assert struct.pack("<d", a) == struct.pack("<d", b), (where, a, b)
    else:
        assert a == b, where

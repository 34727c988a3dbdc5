"""Mutation round for the MLP, the fused one-output jet, the first layer's fixed-point operator
and the allocator (``kanpde/nn/mlp.py``, ``kanpde/nn/one_output.py``,
``kanpde/nn/fixed_points.py``, ``kanpde/allocator.py``).

Each test pins a behaviour that survived a plausible edit of those modules under the rest of
the suite, or checks a derivative against finite differences or a closed form rather than
against another path of the library.
"""

from __future__ import annotations

import ctypes
import os
import platform
import subprocess
import sys

import pytest
import torch

import kanpde
from kanpde.nn import KAN, MLP
from kanpde.nn.mlp import ACTIVATIONS

DT = torch.float64
PAIRS = [(0, 0), (0, 1), (1, 1)]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


def _kan(width, seed=0, k=3):
    """A KAN with O(1) random coefficients: its last layer (one output) takes the fused jet
    of kanpde.nn.one_output and, at points without gradient, its first layer the sparse
    operator of kanpde.nn.fixed_points."""
    torch.manual_seed(seed)
    model = KAN(width, grid=5, k=k, dtype=DT)
    with torch.no_grad():
        for layer in model.layers:
            layer.coef.normal_()
            layer.scale_base.normal_()
            layer.scale_spline.uniform_(0.5, 1.5)
    return model


def _nested_autograd(model, x):
    """Value, gradient and Hessian of the (single) output by nested autograd of the forward."""
    x = x.clone().requires_grad_(True)
    u = model(x)[:, 0]
    (g,) = torch.autograd.grad(u.sum(), x, create_graph=True)
    hess = torch.stack(
        [torch.autograd.grad(g[:, a].sum(), x, retain_graph=True)[0] for a in range(x.shape[1])],
        dim=1,
    )
    return u.detach(), g.detach(), hess.detach()


# --------------------------------------------------------------------------- MLP initialisation


@pytest.mark.parametrize("activation", ["tanh", "sin"])
def test_mlp_weights_are_glorot_normal_and_biases_zero(activation):
    # catches: xavier_uniform_ (same variance, kurtosis 1.8 instead of 3), a gain other than 1
    # (std off by that factor), biases drawn instead of zeroed. Measured (seed 0): std/target
    # 0.9975 and 0.9952, kurtosis 3.018 and 2.984 on the 120000- and 80000-weight layers.
    torch.manual_seed(0)
    model = MLP([300, 400, 200, 1], activation=activation, dtype=DT)
    for layer in model.layers:
        fan_out, fan_in = layer.weight.shape
        assert not layer.bias.any()
        if layer.weight.numel() < 10_000:
            continue  # too few draws for tight moments
        w = layer.weight.detach().flatten()
        target = (2.0 / (fan_in + fan_out)) ** 0.5
        assert abs(float(w.mean())) <= 0.02 * target
        assert float(w.std()) / target == pytest.approx(1.0, abs=0.02)
        centred = w - w.mean()
        kurtosis = float((centred**4).mean() / (centred**2).mean() ** 2)
        assert kurtosis == pytest.approx(3.0, abs=0.12)


# --------------------------------------------------------------------------- MLP activations


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_derivative_tables_match_finite_differences(name):
    # f' and f'' of each (f, f', f'') triple against central differences of f itself
    x = torch.linspace(-4, 4, 161, dtype=DT)
    f, f1, f2 = ACTIVATIONS[name](x)
    h = 1e-4
    fp, fm = ACTIVATIONS[name](x + h)[0], ACTIVATIONS[name](x - h)[0]
    d1 = (fp - fm) / (2 * h)
    d2 = (fp - 2 * f + fm) / (h * h)
    assert float((f1 - d1).abs().max()) <= 1e-7
    assert float((f2 - d2).abs().max()) <= 1e-6
    assert float(f2.abs().max()) > 0.1  # far above the tolerance: a factor 2 is caught


# --------------------------------------------------------------------------- fixed-point cache


def test_operator_cache_rebuilds_for_another_points_tensor_of_the_same_version():
    # Two fresh tensors share version 0, dtype and shape: only the identity check tells them
    # apart. Without it the second set of points got the first set's operator (wrong jets).
    model = _kan([2, 6, 1])
    torch.manual_seed(1)
    first = torch.rand(40, 2, dtype=DT) * 2 - 1
    second = torch.rand(40, 2, dtype=DT) * 2 - 1
    assert first._version == second._version
    model.jet(first, 2, PAIRS)
    op_first = model.layers[0]._point_ops._op
    assert op_first is not None
    jet = model.jet(second, 2, PAIRS)
    assert model.layers[0]._point_ops._op is not op_first
    u, g, hess = _nested_autograd(model, second)
    assert _rel(jet.value[:, 0], u) <= 1e-12
    assert _rel(jet.d1[:, 0], g) <= 1e-12
    ref2 = torch.stack([hess[:, a, b] for a, b in PAIRS], dim=-1)
    assert _rel(jet.d2[:, 0], ref2) <= 1e-11


# ---------------------------------------------------------------- jets vs finite differences


def test_fused_jet_matches_finite_differences_of_the_forward():
    # The fixed-point first layer and the fused last layer, against central differences of
    # model(x) (d1) and of the jet's own d1 (d2, mixed pair included): no factor 2 anywhere.
    model = _kan([2, 5, 1])
    torch.manual_seed(2)
    x = torch.rand(30, 2, dtype=DT) * 1.8 - 0.9
    jet = model.jet(x, 2, PAIRS)
    assert model.layers[0]._point_ops._op is not None  # the operator path was taken
    h = 1e-5
    eye = torch.eye(2, dtype=DT)
    with torch.no_grad():
        d1 = torch.stack(
            [(model(x + h * eye[a]) - model(x - h * eye[a]))[:, 0] / (2 * h) for a in range(2)],
            dim=-1,
        )
        d2 = []
        for a, b in PAIRS:
            plus = model.jet(x + h * eye[b], 1).d1[:, 0, a]
            minus = model.jet(x - h * eye[b], 1).d1[:, 0, a]
            d2.append((plus - minus) / (2 * h))
        d2 = torch.stack(d2, dim=-1)
    assert _rel(jet.d1[:, 0], d1) <= 1e-6  # measured 1.5e-8 (d2: 5e-9)
    assert _rel(jet.d2[:, 0], d2) <= 1e-6
    assert _rel(2 * jet.d2[:, 0], d2) > 0.5 and float(d2[:, 1].abs().max()) > 0.1


def _jet_loss(model, x):
    jet = model.jet(x, 2, PAIRS)
    return (jet.value**2).sum() + 0.5 * (jet.d1**2).sum() + 0.25 * (jet.d2**2).sum()


@pytest.mark.parametrize("width", [[2, 5, 1], [2, 4, 3, 1]])
def test_parameter_gradients_through_the_custom_backwards_match_central_differences(width):
    # A loss of value, d1 and d2 (the PDE-residual shape of loss) at fixed points, so the
    # gradient runs through _Product's and _OneOutputJet's hand-written backwards; each
    # parameter tensor's directional derivative against a central difference.
    model = _kan(width, seed=3)
    torch.manual_seed(4)
    x = torch.rand(25, 2, dtype=DT) * 1.8 - 0.9
    params = list(model.parameters())
    grads = torch.autograd.grad(_jet_loss(model, x), params)
    assert model.layers[0]._point_ops._op is not None
    eps = 1e-6
    for p, g in zip(params, grads):
        v = torch.randn_like(p)
        with torch.no_grad():
            p.add_(eps * v)
            up = float(_jet_loss(model, x))
            p.sub_(2 * eps * v)
            down = float(_jet_loss(model, x))
            p.add_(eps * v)
        fd = (up - down) / (2 * eps)
        got = float((g * v).sum())
        assert got == pytest.approx(fd, rel=1e-6, abs=1e-6 * abs(up)), p.shape


# --------------------------------------------------------------------------- allocator, real glibc

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"

_MALLINFO = """
import ctypes, importlib.util, sys
class Info(ctypes.Structure):
    names = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
    _fields_ = [(n, ctypes.c_size_t) for n in names.split()]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
if sys.argv[2] == "1":
    spec = importlib.util.spec_from_file_location("allocator", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.retain_freed_memory()
before = libc.mallinfo2()
block = libc.malloc(20 << 20)
during = libc.mallinfo2()
libc.free(block)
after = libc.mallinfo2()
print(during.hblkhd - before.hblkhd, during.arena - before.arena, after.arena - before.arena)
"""


@pytest.mark.skipif(not GLIBC or not hasattr(ctypes.CDLL(None), "mallinfo2"), reason="glibc")
def test_retain_freed_memory_keeps_a_20_mib_block_in_the_heap():
    # The real effect of the documented defaults (32 MiB mmap threshold, 256 MiB trim
    # threshold): a 20 MiB block comes from the heap, not its own mmap, and stays there once
    # freed. glibc's default serves it by mmap (measured: +20 MiB mapped, heap unchanged).
    path = os.path.join(os.path.dirname(kanpde.__file__), "allocator.py")

    # glibc's own thresholds: no tunables from the environment
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_"))}

    def measure(apply):
        out = subprocess.run(
            [sys.executable, "-c", _MALLINFO, path, apply],
            env={**clean, "KANPDE_MALLOPT": "1"},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return [int(v) for v in out.stdout.split()]

    mib = 1 << 20
    mapped, heap, kept = measure("0")
    assert mapped >= 20 * mib and heap < mib  # glibc's own behaviour: its own mapping
    mapped, heap, kept = measure("1")
    assert mapped == 0
    assert heap >= 20 * mib and kept >= 20 * mib  # from the heap, and not trimmed after free

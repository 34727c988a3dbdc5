"""Independent tests of :mod:`kanpde.operators` against closed-form derivatives.

Fields are built from the points ``x`` (float64, requires_grad) with known derivatives, so a
wrong sign, a factor 2 or a swapped axis shows up at round-off level. The cache is checked by
counting ``torch.autograd.grad`` calls; model jets are checked against plain autograd.
"""

from __future__ import annotations

import math

import pytest
import torch

from kanpde import operators as ops
from kanpde.nn import KAN, MLP
from kanpde.operators import d, derivatives, div, grad, hessian, laplacian, split

DT = torch.float64
TOL = 1e-12


def pts(n: int, dim: int, seed: int = 0, lo: float = -1.0, hi: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = lo + (hi - lo) * torch.rand(n, dim, generator=g, dtype=DT)
    return x.requires_grad_(True)


def close(got: torch.Tensor, ref: torch.Tensor, tol: float = TOL) -> None:
    got, ref = got.detach(), ref.detach()
    assert got.shape == ref.shape, f"shape {tuple(got.shape)} != {tuple(ref.shape)}"
    err = float((got - ref).abs().max()) if got.numel() else 0.0
    scale = max(1.0, float(ref.abs().max()) if ref.numel() else 0.0)
    assert err <= tol * scale, f"max abs error {err:.3e}"


@pytest.fixture
def count_grad(monkeypatch):
    """Counts calls of torch.autograd.grad (the operators look it up at call time)."""
    calls = {"n": 0}
    real = torch.autograd.grad

    def counting(*args, **kw):
        calls["n"] += 1
        return real(*args, **kw)

    monkeypatch.setattr(torch.autograd, "grad", counting)
    return calls


# -- closed forms, plain integer axes (no context) --------------------------------------------


def test_1d_polynomial_up_to_fourth_derivative():
    x = pts(20, 1, lo=-2, hi=2)
    u = x**4 - 3 * x**2 + x
    xd = x.detach()
    close(d(u, x, 0), 4 * xd**3 - 6 * xd + 1)
    close(d(u, x, 0, 0), 12 * xd**2 - 6)
    close(d(u, x, 0, 0, 0), 24 * xd)
    close(d(u, x, 0, 0, 0, 0), torch.full_like(xd, 24.0))
    close(laplacian(u, x), 12 * xd**2 - 6)
    close(grad(u, x), 4 * xd**3 - 6 * xd + 1)  # scalar field: (N, D_s) = (N, 1)
    close(hessian(u, x), (12 * xd**2 - 6).unsqueeze(-1))
    # x⁴ alone: the fourth derivative is exactly 24 everywhere.
    v = x**4
    close(d(v, x, 0, 0, 0, 0), torch.full_like(xd, 24.0))


def test_2d_polynomial_gradient_laplacian_hessian():
    x = pts(30, 2, seed=1)
    X, Y = x[:, 0:1], x[:, 1:2]
    u = X**2 * Y + 3 * Y**3 - X * Y
    Xd, Yd = X.detach(), Y.detach()
    ux = 2 * Xd * Yd - Yd
    uy = Xd**2 + 9 * Yd**2 - Xd
    close(d(u, x, 0), ux)
    close(d(u, x, 1), uy)
    close(d(u, x, 0, 1), 2 * Xd - 1)
    close(d(u, x, 1, 0), 2 * Xd - 1)
    close(d(u, x, 0, 0), 2 * Yd)
    close(d(u, x, 1, 1), 18 * Yd)
    close(d(u, x, -1, -1), 18 * Yd)  # negative axes count from the end
    close(d(u, x, 0, 1, 1), torch.zeros_like(Xd))
    close(d(u, x, 0, 0, 1), torch.full_like(Xd, 2.0))
    close(d(u, x, 1, 1, 1), torch.full_like(Xd, 18.0))
    close(grad(u, x), torch.cat([ux, uy], dim=1))
    close(laplacian(u, x), 2 * Yd + 18 * Yd)
    H = hessian(u, x)
    assert H.shape == (30, 2, 2)
    close(H[:, 0, 0], 2 * Yd[:, 0])
    close(H[:, 1, 1], 18 * Yd[:, 0])
    close(H[:, 0, 1], 2 * Xd[:, 0] - 1)
    close(H[:, 1, 0], 2 * Xd[:, 0] - 1)


def test_2d_trig_field():
    x = pts(25, 2, seed=2)
    X, Y = x[:, 0:1], x[:, 1:2]
    u = torch.sin(math.pi * X) * torch.cos(2 * math.pi * Y)
    Xd, Yd = X.detach(), Y.detach()
    s, c = torch.sin(math.pi * Xd), torch.cos(2 * math.pi * Yd)
    close(d(u, x, 0), math.pi * torch.cos(math.pi * Xd) * c)
    close(d(u, x, 1), -2 * math.pi * s * torch.sin(2 * math.pi * Yd))
    close(laplacian(u, x), -5 * math.pi**2 * s * c)
    close(
        d(u, x, 0, 1),
        -2 * math.pi**2 * torch.cos(math.pi * Xd) * torch.sin(2 * math.pi * Yd),
    )


def test_3d_trig_exp_field():
    x = pts(25, 3, seed=3)
    X, Y, Z = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    u = torch.sin(X) * torch.cos(2 * Y) * torch.exp(Z)
    Xd, Yd, Zd = X.detach(), Y.detach(), Z.detach()
    ud = torch.sin(Xd) * torch.cos(2 * Yd) * torch.exp(Zd)
    g = grad(u, x)
    assert g.shape == (25, 3)
    close(g[:, 0:1], torch.cos(Xd) * torch.cos(2 * Yd) * torch.exp(Zd))
    close(g[:, 1:2], -2 * torch.sin(Xd) * torch.sin(2 * Yd) * torch.exp(Zd))
    close(g[:, 2:3], ud)
    close(laplacian(u, x), (-1 - 4 + 1) * ud)
    H = hessian(u, x)
    assert H.shape == (25, 3, 3)
    close(H[:, 0, 1:2], -2 * torch.cos(Xd) * torch.sin(2 * Yd) * torch.exp(Zd))
    close(H[:, 1, 2:3], -2 * torch.sin(Xd) * torch.sin(2 * Yd) * torch.exp(Zd))
    close(H[:, 0, 2:3], torch.cos(Xd) * torch.cos(2 * Yd) * torch.exp(Zd))
    close(H, H.transpose(1, 2))
    close(H[:, 2, 2:3], ud)
    close(H[:, 1, 1:2], -4 * ud)


def test_3d_divergence():
    x = pts(20, 3, seed=4)
    X, Y, Z = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    v = torch.cat([X**2 * Y, Y * Z, Z * X + torch.sin(Y)], dim=1)
    Xd, Yd, Zd = X.detach(), Y.detach(), Z.detach()
    close(div(v, x), 2 * Xd * Yd + Zd + Xd)
    # div of a gradient is the Laplacian
    u = X**3 * Y + Z**2 * Y
    close(div(grad(u, x), x), 6 * Xd * Yd + 2 * Yd)


def test_constant_and_linear_fields():
    x = pts(10, 2, seed=5)
    c = torch.ones(10, 1, dtype=DT)  # does not depend on x at all
    close(d(c, x, 0), torch.zeros(10, 1, dtype=DT))
    close(laplacian(c, x), torch.zeros(10, 1, dtype=DT))
    lin = 3 * x[:, 0:1] - 2 * x[:, 1:2]
    close(grad(lin, x), torch.tensor([[3.0, -2.0]], dtype=DT).expand(10, 2))
    close(laplacian(lin, x), torch.zeros(10, 1, dtype=DT))


# -- multi-output fields, names, components ---------------------------------------------------


def _system(x):
    X, Y = x[:, 0:1], x[:, 1:2]
    return torch.cat([X**2 * Y, torch.sin(X) + Y**3, X * Y], dim=1)


def test_multi_output_per_component_derivatives():
    x = pts(15, 2, seed=6)
    u = _system(x)
    Xd, Yd = x[:, 0:1].detach(), x[:, 1:2].detach()
    with derivatives(names=("x", "y"), outputs=("u", "v", "w")):
        ux = d(u, x, "x")
        assert ux.shape == (15, 3)
        close(ux, torch.cat([2 * Xd * Yd, torch.cos(Xd), Yd], dim=1))
        close(d(u, x, "y"), torch.cat([Xd**2, 3 * Yd**2, Xd], dim=1))
        # by index and by name
        close(d(u, x, "x", component=1), torch.cos(Xd))
        close(d(u, x, "x", component="v"), torch.cos(Xd))
        close(d(u, x, "y", component="w"), Xd)
        assert d(u, x, "y", component=2).shape == (15, 1)
        # mixed derivative by axis names, both orders
        mixed = torch.cat([2 * Xd, torch.zeros_like(Xd), torch.ones_like(Xd)], dim=1)
        close(d(u, x, "x", "y"), mixed)
        close(d(u, x, "y", "x"), mixed)
        close(d(u, x, "x", 1), mixed)  # names and integers mix
        close(d(u, x, "x", "x", component="u"), 2 * Yd)
        close(d(u, x, "y", "y", component="v"), 6 * Yd)
        close(laplacian(u, x), torch.cat([2 * Yd, -torch.sin(Xd) + 6 * Yd, 0 * Xd], dim=1))
        g = grad(u, x)
        assert g.shape == (15, 3, 2)
        close(g[:, 1, 0:1], torch.cos(Xd))
        close(g[:, 1, 1:2], 3 * Yd**2)
        close(g[:, 0, 1:2], Xd**2)


def test_multi_output_without_context():
    x = pts(12, 2, seed=7)
    u = _system(x)
    Xd, Yd = x[:, 0:1].detach(), x[:, 1:2].detach()
    close(d(u, x, 0), torch.cat([2 * Xd * Yd, torch.cos(Xd), Yd], dim=1))
    close(d(u, x, 1, component=0), Xd**2)
    close(d(u, x, 0, 1, component=2), torch.ones_like(Xd))


def test_space_time_spatial_axes_only():
    x = pts(20, 3, seed=8)  # (x, y, t)
    X, Y, T = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    u = X**3 * T**2 + Y**2 * T**3 + T**4
    Xd, Yd, Td = X.detach(), Y.detach(), T.detach()
    with derivatives(names=("x", "y", "t"), spatial=(0, 1)):
        close(laplacian(u, x), 6 * Xd * Td**2 + 2 * Td**3)  # no ∂²/∂t² = 2X³ + 6Y²T + 12T²
        g = grad(u, x)
        assert g.shape == (20, 2)
        close(g, torch.cat([3 * Xd**2 * Td**2, 2 * Yd * Td**3], dim=1))
        close(d(u, x, "t"), 2 * Xd**3 * Td + 3 * Yd**2 * Td**2 + 4 * Td**3)
        close(d(u, x, "t", "t"), 2 * Xd**3 + 6 * Yd**2 * Td + 12 * Td**2)
        close(d(u, x, "x", "t"), 6 * Xd**2 * Td)
        H = hessian(u, x)
        assert H.shape == (20, 2, 2)
        close(H[:, 0, 0:1], 6 * Xd * Td**2)
        close(H[:, 1, 1:2], 2 * Td**3)
        close(H[:, 0, 1:2], torch.zeros_like(Xd))
        v = torch.cat([X * T, Y**2 * T], dim=1)  # one column per spatial axis
        close(div(v, x), Td + 2 * Yd * Td)
        with pytest.raises(ValueError, match="one column per spatial axis"):
            div(torch.cat([v, T], dim=1), x)


def test_space_time_1d():
    x = pts(20, 2, seed=9)  # (x, t)
    X, T = x[:, 0:1], x[:, 1:2]
    u = torch.sin(math.pi * X) * torch.exp(-T)
    Xd, Td = X.detach(), T.detach()
    with derivatives(names=("x", "t"), spatial=(0,)):
        close(laplacian(u, x), -(math.pi**2) * torch.sin(math.pi * Xd) * torch.exp(-Td))
        g = grad(u, x)
        assert g.shape == (20, 1)
        close(g, math.pi * torch.cos(math.pi * Xd) * torch.exp(-Td))


# -- the cache --------------------------------------------------------------------------------


def test_cache_computes_each_derivative_once(count_grad):
    x = pts(10, 2, seed=10)
    u = x[:, 0:1] ** 3 * x[:, 1:2] ** 2
    with derivatives(names=("x", "y")) as ctx:
        lap1 = laplacian(u, x)
        n_after_first = count_grad["n"]
        # first derivatives (1 call), second derivatives of u_x and u_y (2 calls)
        assert n_after_first == 3
        # every derivative used is recorded once, as the probe plans the jets from these
        assert sorted(k for k, _ in ctx.misses) == [(0,), (0, 0), (1,), (1, 1)]
        lap2 = laplacian(u, x)
        d(u, x, "x", "x")
        d(u, x, "y", "x")  # a by-product of u_xx's call, but used now: recorded
        d(u, x, "x")
        grad(u, x)
        hessian(u, x)
        assert count_grad["n"] == n_after_first, "a cached derivative was recomputed"
        assert sorted(k for k, _ in ctx.misses) == [(0,), (0, 0), (0, 1), (1,), (1, 1)]
        assert lap2 is lap1 or torch.equal(lap2, lap1)
        # a new order is one more call
        d(u, x, "x", "x", "y")
        assert count_grad["n"] == n_after_first + 1
    # a new context starts with an empty cache
    with derivatives(names=("x", "y")) as ctx2:
        laplacian(u, x)
        assert len(ctx2.misses) == 4


def test_multi_output_first_derivatives_one_call_per_column(count_grad):
    x = pts(10, 2, seed=11)
    u = _system(x)
    with derivatives():
        d(u, x, 0)
        assert count_grad["n"] == 3  # one per output column, giving all axes at once
        d(u, x, 1)
        grad(u, x)
        assert count_grad["n"] == 3


def test_split_reuses_parent_derivatives(count_grad):
    x = pts(10, 2, seed=12)
    u = _system(x)
    Xd, Yd = x[:, 0:1].detach(), x[:, 1:2].detach()
    with derivatives(names=("x", "y"), outputs=("u", "v", "w")) as ctx:
        lap = laplacian(u, x)
        grad(u, x)
        n = count_grad["n"]
        a, b, c = split(u)
        assert a.shape == b.shape == c.shape == (10, 1)
        close(a, u[:, 0:1])
        close(laplacian(b, x), lap[:, 1:2])
        close(d(a, x, "x"), 2 * Xd * Yd)
        close(d(c, x, "x", "y"), torch.ones_like(Xd))
        close(grad(b, x), torch.cat([torch.cos(Xd), 3 * Yd**2], dim=1))
        assert count_grad["n"] == n, "split columns recomputed derivatives of the parent"
        misses = len(ctx.misses)
        # An order the parent lacks is computed for the column alone, correctly.
        close(d(b, x, "y", "y", "y"), torch.full_like(Yd, 6.0))
        assert len(ctx.misses) == misses + 1


def test_split_before_parent_derivatives():
    x = pts(10, 2, seed=13)
    u = _system(x)
    Xd, Yd = x[:, 0:1].detach(), x[:, 1:2].detach()
    with derivatives():
        a, b, c = split(u)
        close(laplacian(a, x), 2 * Yd)
        close(laplacian(b, x), -torch.sin(Xd) + 6 * Yd)
        close(d(c, x, 0, 1), torch.ones_like(Xd))


def test_split_outside_context_gives_columns():
    x = pts(6, 2, seed=14)
    u = _system(x)
    cols = split(u)
    assert len(cols) == 3
    Xd = x[:, 0:1].detach()
    close(d(cols[1], x, 0), torch.cos(Xd))


def test_residual_stays_differentiable_for_training():
    """create_graph=True: the parameter gradient of a Laplacian residual is available."""
    w = torch.tensor(2.0, dtype=DT, requires_grad=True)
    x = pts(10, 1, seed=15)
    u = w * x**3  # Δu = 6 w x
    r = laplacian(u, x)
    (gw,) = torch.autograd.grad(r.sum(), w)
    close(gw, 6 * x.detach().sum())


# -- errors -----------------------------------------------------------------------------------


def test_names_outside_context_give_clear_error():
    x = pts(5, 2)
    u = x[:, 0:1] * x[:, 1:2]
    close(d(u, x, 1), x[:, 0:1].detach())  # integer axes work
    with pytest.raises(ValueError, match="by name.*pass an integer"):
        d(u, x, "x")
    with pytest.raises(ValueError, match="unknown output 'v'"):
        d(u, x, 0, component="v")


def test_unknown_names_inside_context():
    x = pts(5, 2)
    u = torch.cat([x[:, 0:1], x[:, 1:2]], dim=1)
    with derivatives(names=("x", "y"), outputs=("u", "v")):
        with pytest.raises(ValueError, match=r"unknown axis 'z'; axes are x, y"):
            d(u, x, "z")
        with pytest.raises(ValueError, match=r"unknown output 'p'; outputs are u, v"):
            d(u, x, "x", component="p")
        with pytest.raises(ValueError, match="component 2 out of range"):
            d(u, x, "x", component=2)


def test_bad_shapes_and_types():
    x = pts(5, 2)
    u = x[:, 0:1] ** 2
    with pytest.raises(ValueError, match=r"field must have shape \(N, m\)"):
        d(u[:, 0], x, 0)
    with pytest.raises(ValueError, match=r"field must have shape \(N, m\) with N = 5"):
        d(u[:3], x, 0)
    with pytest.raises(ValueError, match=r"points must have shape \(N, D\)"):
        d(u, x[:, 0], 0)
    with pytest.raises(TypeError, match="operators take tensors"):
        d(u.detach().numpy(), x, 0)
    with pytest.raises(ValueError, match="out of range for points with 2 coordinates"):
        d(u, x, 2)
    with pytest.raises(ValueError, match="hessian takes a scalar field"):
        hessian(torch.cat([u, u], dim=1), x)
    with pytest.raises(ValueError, match="one column per spatial axis"):
        div(u, x)
    xs = x.detach()
    with pytest.raises(ValueError, match="requires_grad"):
        d(xs[:, 0:1] ** 2, xs, 0)


# -- model jets give the same derivatives as autograd -----------------------------------------


def _kan(width):
    torch.manual_seed(0)
    m = KAN(width, grid=5, k=3, init_scale=0.5, dtype=DT)
    with torch.no_grad():
        for layer in m.layers:
            layer.scale_base.uniform_(-0.8, 0.8)
    return m


def _mlp(width):
    torch.manual_seed(0)
    return MLP(width, activation="tanh", dtype=DT)


# (kan-square: a hidden layer with as many outputs as inputs, where a transposed weight of the
# silu part would go unnoticed by shapes)
@pytest.mark.parametrize(
    "make",
    [lambda: _kan([2, 4, 2]), lambda: _kan([2, 3, 3, 2]), lambda: _mlp([2, 8, 8, 2])],
    ids=["kan", "kan-square", "mlp"],
)
def test_registered_jets_match_autograd(make, count_grad):
    model = make()
    x = pts(30, 2, seed=16, lo=-0.9, hi=0.9)
    # reference: plain autograd, outside any context
    u_ref = model(x)
    lap_ref = laplacian(u_ref, x)
    dx_ref, dy_ref = d(u_ref, x, 0), d(u_ref, x, 1)
    dxy_ref = d(u_ref, x, 0, 1)
    dxxx_ref = d(u_ref, x, 0, 0, 0)
    before = count_grad["n"]
    pairs = [(0, 0), (0, 1), (1, 1)]
    with derivatives(names=("x", "y"), outputs=("u", "v")) as ctx:
        jet = model.jet(x, 2, pairs)
        ctx.register(jet.value, x, jet)
        u = jet.value
        lap = laplacian(u, x)
        dx, dy = d(u, x, "x"), d(u, x, "y")
        dxy = d(u, x, "y", "x")
        dvx = d(u, x, "x", component="v")
        a, b = split(u)
        lap_b = laplacian(b, x)
        # everything up to second order came from the jet: no autograd call
        assert count_grad["n"] == before
        assert ctx.misses == []
        # third derivatives fall back to autograd on the jet's second derivatives
        dxxx = d(u, x, "x", "x", "x")
        assert len(ctx.misses) == 1
    for got, ref in [(lap, lap_ref), (dx, dx_ref), (dy, dy_ref), (dxy, dxy_ref)]:
        rel = float((got - ref).detach().abs().max() / ref.detach().abs().max())
        assert rel <= 1e-10, rel
    close(dvx, dx_ref[:, 1:2], 1e-10)
    close(lap_b, lap_ref[:, 1:2], 1e-10)
    rel3 = float((dxxx - dxxx_ref).detach().abs().max() / dxxx_ref.detach().abs().max())
    assert rel3 <= 1e-9, rel3


def test_registered_jet_values_are_used():
    """The cache serves the registered derivatives (not recomputed): a doctored jet shows."""
    model = _mlp([2, 5, 1])
    x = pts(8, 2, seed=17)
    jet = model.jet(x, 2, [(0, 0), (1, 1)])
    jet.d2 = jet.d2 * 0 + 7.0
    with derivatives() as ctx:
        ctx.register(jet.value, x, jet)
        close(laplacian(jet.value, x), torch.full((8, 1), 14.0, dtype=DT))


def test_context_is_restored_after_exit():
    with derivatives(names=("x",)):
        pass
    assert ops._CONTEXT.get() is None
    with derivatives(names=("a", "b")):
        with derivatives(names=("x", "y")):
            x = pts(4, 2)
            u = x[:, 1:2] ** 2
            close(d(u, x, "y", "y"), torch.full((4, 1), 2.0, dtype=DT))
        with pytest.raises(ValueError, match="unknown axis 'y'"):
            d(u, x, "y")


def test_split_columns_keep_their_ids_while_the_context_lives():
    # A freed split column's id, reused by a new tensor, must not make that tensor look like
    # the column: d(p * p) once returned u_x when w = p * p took the freed id of u's column.
    x = pts(8, 2, seed=15)
    out = torch.cat([x[:, :1] ** 2, 3 * x[:, 1:2], x.sum(1, keepdim=True)], dim=1)
    with derivatives(names=("x", "y")):
        d(out, x, "x")  # the parent's first derivatives are cached, as the jet pre-fills them
        for _ in range(20):  # each round frees columns whose ids new tensors could take
            _, _, p = split(out)
            w = p * p
            close(d(w, x, "x"), 2 * x.detach().sum(1, keepdim=True))


def test_derivatives_obtained_together_are_each_recorded_when_used():
    # One autograd call gives u_xx and u_xy; a residual using both needs both from the jet.
    x = pts(8, 2, seed=16)
    u = x[:, :1] ** 2 * x[:, 1:2]
    with derivatives() as ctx:
        d(u, x, 0, 0)
        assert (0, 1) not in [k for k, _ in ctx.misses]
        close(d(u, x, 0, 1), 2 * x[:, :1].detach())
        assert sorted(k for k, _ in ctx.misses) == [(0,), (0, 0), (0, 1)]


# -- derivatives along a slice of the points ---------------------------------------------------


def test_derivative_along_a_slice_is_refused_not_zero():
    # d(u, x[:, 1:2], 0) once returned zeros: the slice is a new tensor u was not built from.
    x = pts(7, 2)
    u = torch.sin(x[:, 0:1]) * x[:, 1:2] ** 2
    with pytest.raises(ValueError, match=r"not along a slice such as x\[:, 1:2\]"):
        d(u, x[:, 1:2], 0)
    with derivatives(("x", "y")) as ctx:  # the engine's way: u marked as the field at x
        ctx.mark_root(u, x)
        with pytest.raises(ValueError, match="name the axis instead"):
            d(u, x[:, 1:2], 0)
        (v,) = split(u)
        with pytest.raises(ValueError, match="name the axis instead"):
            d(v, x[:, 0:1], 0)
        close(d(u, x, "y"), 2 * torch.sin(x[:, 0:1]) * x[:, 1:2])


@pytest.mark.parametrize("op", [lambda u, x: d(u, x, 0), laplacian, grad])
def test_derivatives_of_a_field_computed_without_autograd_are_refused_not_zero(op):
    # under torch.no_grad() the field looked constant and every derivative read 0
    x = pts(7, 2)
    model = KAN([2, 3, 1], grid=4, dtype=torch.float64)
    with torch.no_grad():
        u = model(x)
        with pytest.raises(ValueError, match=r"computed under torch.no_grad\(\)"):
            op(u, x)
    ones = torch.ones(7, 1, dtype=torch.float64)  # with autograd on, a constant's are 0
    assert float(d(ones, x, 0).abs().max()) == 0.0


def test_derivative_along_a_slice_the_field_was_built_from():
    x = pts(7, 2)
    t = x[:, 1:2]
    u = torch.cos(x[:, 0:1]) * t**3
    close(d(u, t, 0), 3 * torch.cos(x[:, 0:1]) * t**2)
    close(d(u, t, 0, 0), 6 * torch.cos(x[:, 0:1]) * t)


def test_derivatives_that_vanish_are_zeros():
    # u linear in y: u_yy has no graph path to x (autograd reports it unused); it is 0.
    x = pts(7, 2)
    u = torch.sin(x[:, 0:1]) + 3 * x[:, 1:2]
    close(d(u, x, 1), torch.full_like(u, 3.0))
    close(d(u, x, 1, 1), torch.zeros_like(u))
    close(d(torch.ones_like(u), x, 0), torch.zeros_like(u))
    # points that are a view themselves (of a tensor without gradients) are no slice
    y = torch.linspace(0, 1, 5, dtype=DT)[:, None].requires_grad_()
    assert y._base is not None
    close(d(2 * y + 1, y, 0, 0), torch.zeros_like(y))


def test_a_problem_names_the_axes_outside_training():
    # outside training laplacian summed u_tt into a space-time Laplacian without a word
    import kanpde

    problem = kanpde.Problem(
        name="heat", domain=kanpde.Interval(0, 1) * kanpde.Time(0, 1),
        pde=lambda x, u: d(u, x, "t") - laplacian(u, x), outputs=("u", "v"),
    )  # fmt: skip
    x = pts(9, 2)
    u = torch.cat([x[:, :1] ** 2 * x[:, 1:] ** 3, torch.sin(x[:, :1] + x[:, 1:])], 1)
    everything = laplacian(u, x)  # no context: both axes
    close(everything[:, :1], 2 * x[:, 1:] ** 3 + 6 * x[:, :1] ** 2 * x[:, 1:])
    for source in (problem, problem.domain):
        with kanpde.derivatives(source):
            close(laplacian(u, x), torch.cat([2 * x[:, 1:] ** 3, -torch.sin(x.sum(1, True))], 1))
            close(grad(u, x)[:, :, 0], d(u, x, "x"))
            close(
                d(u, x, "t", component="u" if source is problem else 0),
                3 * x[:, :1] ** 2 * x[:, 1:] ** 2,
            )
        assert ops._CONTEXT.get() is None


@pytest.mark.parametrize("op", [grad, div, laplacian, hessian])
def test_spatial_operators_on_a_time_only_domain_are_refused(op):
    import kanpde

    t = torch.rand(4, 1, dtype=torch.float64, requires_grad=True)
    with derivatives(kanpde.Time(0, 1)):
        assert torch.allclose(d(t**2, t, "t"), 2 * t)  # time derivatives still work
        with pytest.raises(ValueError, match=f"{op.__name__} needs spatial axes, but the domain"):
            op(t**2, t)


# -- mutation-testing additions ---------------------------------------------------------------


# Bug caught: div reading column a (the axis index) of v instead of column i (its position).
def test_div_with_spatial_axes_that_do_not_start_at_zero():
    x = pts(9, 3, seed=20)  # (t, x, y): the spatial axes are columns 1 and 2
    T, X, Y = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    v = torch.cat([T * X**2, X * Y**3], dim=1)  # (v_x, v_y)
    Td, Xd, Yd = T.detach(), X.detach(), Y.detach()
    with derivatives(names=("t", "x", "y"), spatial=(1, 2)):
        close(div(v, x), 2 * Td * Xd + 3 * Xd * Yd**2)
    z = pts(9, 2, seed=24)  # (t, x)
    with derivatives(names=("t", "x"), spatial=(1,)):
        close(div(z[:, 0:1] * z[:, 1:2] ** 2, z), 2 * (z[:, 0:1] * z[:, 1:2]).detach())


# Bug caught: a jet-registered field differentiated along a slice of its (grad-free) points
# said "need requires_grad" instead of refusing the slice (the field's home was not checked).
def test_registered_field_along_a_slice_is_refused():
    model = _kan([2, 3, 1])
    x = pts(6, 2, seed=21).detach()  # the engine's fused points need no gradient
    jet = model.jet(x, 2, [(0, 0)])
    with derivatives(names=("x", "y")) as ctx:
        ctx.register(jet.value, x, jet)
        with pytest.raises(ValueError, match="name the axis instead"):
            d(jet.value, x[:, 1:2], 0)
        close(d(jet.value, x, "x", "x"), jet.d2[:, :, 0])


# Bug caught: any field that does not reach points which are a view (of a grad-free tensor)
# was refused as "a slice" instead of having zero derivatives.
def test_field_independent_of_view_points_has_zero_derivative():
    y = torch.linspace(0, 1, 5, dtype=DT)[:, None].requires_grad_()
    assert y._base is not None and not y._base.requires_grad
    w = torch.tensor(2.0, dtype=DT, requires_grad=True)
    u = w * torch.ones(5, 1, dtype=DT)  # requires grad, but through w only
    close(d(u, y, 0), torch.zeros(5, 1, dtype=DT))


# Bug caught: a one-layer KAN's jet of order 2 without pairs returning d2=None instead of an
# empty (N, m, 0) tensor.
def test_one_layer_kan_jet_without_pairs_has_empty_second_derivatives():
    model = _kan([2, 3])
    for x in (pts(4, 2, seed=23), pts(4, 2, seed=23).detach()):
        jet = model.jet(x, 2, [])
        assert jet.d2 is not None and jet.d2.shape == (4, 3, 0)
        assert jet.d1.shape == (4, 3, 2)

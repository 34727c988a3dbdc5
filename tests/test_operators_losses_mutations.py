"""Mutation-testing round (operators and loss assembly): behaviours of
:mod:`kanpde.operators` and :mod:`kanpde.losses` that the other tests left open.

Each test pins one behaviour against mathematics or a stated rule (closed-form derivatives,
numpy, the documented weighting and sampling); the comment above it names the mutant it kills.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from closed_form import Closed

from kanpde import Dirichlet, Interval, PointData, Problem, ProblemError, Rectangle
from kanpde.losses import Residuals, _entangled, _named_u_x, chunked, error_metrics
from kanpde.operators import d, derivatives, div, grad, hessian, laplacian

DT = torch.float64
SQUARE = Rectangle([0, 0], [1, 1])
POINTS = {"interior": 16, "boundary": 16, "method": "sobol"}


def pts(n: int, dim: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (2 * torch.rand(n, dim, generator=g, dtype=DT) - 1).requires_grad_(True)


def quad(x):  # u = x² + y: Δu = 2
    return x[:, 0:1] ** 2 + x[:, 1:2]


def residuals(pde, conditions=(), f=quad, weights=None, points=None, domain=SQUARE, **kw):
    problem = Problem(name="t", domain=domain, pde=pde, conditions=list(conditions), **kw)
    return Residuals(problem, Closed(f), points or POINTS, weights or {}, DT, "cpu")


# -- operators --------------------------------------------------------------------------------


# Mutant: a negative axis taken past its range (-dim - 1 wrapping to the last axis) or not
# counted from the end (-1 read as column 0).
def test_negative_axes_count_from_the_end_and_stop_at_minus_dim():
    x = pts(7, 3)
    u = x[:, 0:1] * x[:, 1:2] ** 2 + 5 * x[:, 2:3] ** 3
    xd = x.detach()
    dz = 15 * xd[:, 2:3] ** 2
    assert torch.allclose(d(u, x, -1), dz, rtol=0, atol=1e-12)
    assert torch.allclose(d(u, x, -3, -2), 2 * xd[:, 1:2], rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="axis -4 out of range for points with 3 coordinates"):
        d(u, x, -4)


# Mutants: component=0 taken as "no component" (falsy), giving every output; a negative
# component accepted.
def test_component_zero_selects_the_first_output():
    x = pts(6, 2)
    u = torch.cat([3 * x[:, 0:1], 7 * x[:, 0:1]], dim=1)
    got = d(u, x, 0, component=0)
    assert got.shape == (6, 1)
    assert torch.allclose(got, torch.full((6, 1), 3.0, dtype=DT), rtol=0, atol=1e-14)
    with derivatives(names=("x", "y"), outputs=("u", "v")):
        got = d(u, x, "x", component="v")
    assert torch.allclose(got, torch.full((6, 1), 7.0, dtype=DT), rtol=0, atol=1e-14)
    # (a negative index would select no column at all: u[:, -1:0] is empty)
    with pytest.raises(ValueError, match="component -1 out of range for a field with 2 outputs"):
        d(u, x, 0, component=-1)


# Mutant: points that are no tensor let through (an AttributeError deep in autograd).
def test_points_that_are_not_a_tensor_are_refused():
    x = pts(5, 2)
    u = x[:, 0:1] ** 2
    with pytest.raises(TypeError, match="operators take tensors"):
        d(u, x.detach().numpy(), 0)
    with pytest.raises(ValueError, match=r"points must have shape \(N, D\)"):
        d(u, x.reshape(5, 2, 1), 0)


# Mutants: div taking a field with more columns than spatial axes (its extra columns
# ignored); hessian taking a field of two outputs.
def test_div_and_hessian_refuse_fields_of_the_wrong_width():
    x = pts(5, 2)
    v = torch.cat([x, x[:, :1]], dim=1)  # three columns in 2-D
    with pytest.raises(ValueError, match=r"one column per spatial axis \(2\), got 3"):
        div(v, x)
    with pytest.raises(ValueError, match=r"hessian takes a scalar field \(N, 1\), got \(5, 2\)"):
        hessian(x**2, x)


# Mutant: the points' own spatial axes overriding the ones given to derivatives(domain, ...).
def test_spatial_axes_given_with_a_domain_win_over_the_domains():
    x = pts(9, 2, seed=1)
    u = x[:, 0:1] ** 3 + x[:, 1:2] ** 4
    xd = x.detach()
    with derivatives(SQUARE, spatial=(1,)):
        lap = laplacian(u, x)
        g = grad(u, x)
    assert torch.allclose(lap, 12 * xd[:, 1:2] ** 2, rtol=0, atol=1e-12)
    assert torch.allclose(g, 4 * xd[:, 1:2] ** 3, rtol=0, atol=1e-12)
    with derivatives(SQUARE):  # the domain's: both axes
        lap = laplacian(u, x)
    assert torch.allclose(lap, 6 * xd[:, 0:1] + 12 * xd[:, 1:2] ** 2, rtol=0, atol=1e-12)


# Mutant: the output names given with a problem replaced by the problem's.
def test_outputs_given_with_a_problem_win_over_the_problems():
    problem = Problem(name="t", domain=SQUARE, pde=lambda x, u: laplacian(u, x),
                      conditions=[Dirichlet(0.0)])  # fmt: skip
    x = pts(4, 2)
    u = torch.cat([x[:, 0:1], 2 * x[:, 1:2]], dim=1)
    with derivatives(problem, outputs=("a", "b")):
        got = d(u, x, "y", component="b")
    assert torch.allclose(got, torch.full((4, 1), 2.0, dtype=DT), rtol=0, atol=1e-14)


# Mutant: the model's output not tied to its points, so its derivative along other points
# (a copy of x that it does not depend on) read as 0 instead of being refused.
def test_a_model_output_differentiated_along_other_points_is_refused():
    x = pts(5, 2)
    u = quad(x)
    other = x.detach().clone().requires_grad_(True)
    with derivatives(("x", "y")) as ctx:
        ctx.mark_root(u, x)
        with pytest.raises(ValueError, match="along the points the field was computed from"):
            d(u, other, "x")
        assert torch.allclose(d(u, x, "x"), 2 * x.detach()[:, :1], rtol=0, atol=1e-14)


# -- the loss: means, weights, names ----------------------------------------------------------


def _mean_sq(r: torch.Tensor) -> float:
    return float((r.detach() ** 2).mean())


# Mutant: set_interior keeping the old point count as the mean's denominator.
def test_the_pde_mean_follows_a_new_interior_point_count():
    res = residuals(lambda x, u: laplacian(u, x) + u)  # Δu + u = 2 + x² + y
    new = torch.rand(10, 2, dtype=DT, generator=torch.Generator().manual_seed(3))
    res.set_interior(new)
    got = float(res.terms_of()["pde"].detach())
    assert abs(got - _mean_sq(2 + new[:, 0] ** 2 + new[:, 1])) <= 1e-12 * got


# Mutant: a PDE returning a one-element tuple naming its residual pde[0] instead of pde.
def test_a_one_element_tuple_is_the_residual_pde():
    res = residuals(lambda x, u: (laplacian(u, x) - 1.0,))
    assert res.pde_names() == ["pde"]
    assert abs(float(res.terms_of()["pde"].detach()) - 1.0) <= 1e-12


# Mutants: weight "pde[0]" of a one-residual PDE ignored; "pde" not applying to each pde[k];
# a condition whose name starts with "pde" taking the PDE's weight; weights= not overriding
# the condition's own weight; a condition's own weight replaced by 1.
def test_weights_of_residuals_and_conditions():
    lap = lambda x, u: laplacian(u, x) - 1.0  # noqa: E731 - residual 1 everywhere
    res = residuals(lap, [Dirichlet(quad)], weights={"pde[0]": 3.0})
    assert res.weight("pde") == 3.0
    terms = res.terms_of()
    assert float(res.total(terms).detach()) == pytest.approx(3.0, rel=1e-12)

    two = lambda x, u: (laplacian(u, x) - 1.0, laplacian(u, x) + 1.0)  # noqa: E731 - 1 and 3
    res = residuals(two, [Dirichlet(quad, weight=4.0, name="pde_bc")], weights={"pde": 5.0})
    assert res.pde_names() == ["pde[0]", "pde[1]"]
    assert [res.weight(n) for n in ("pde[0]", "pde[1]", "pde_bc")] == [5.0, 5.0, 4.0]
    total = float(res.total(res.terms_of()).detach())
    assert total == pytest.approx(5.0 * 1.0 + 5.0 * 9.0, rel=1e-12)  # pde_bc's residual is 0

    cond = Dirichlet(lambda x: quad(x) + 0.5, weight=4.0)  # misfit 0.5 everywhere
    res = residuals(lap, [cond], weights={"dirichlet": 2.0})
    assert res.weight("dirichlet") == 2.0
    assert float(res.total(res.terms_of()).detach()) == pytest.approx(1.0 + 2.0 * 0.25)
    res = residuals(lap, [Dirichlet(lambda x: quad(x) + 0.5, weight=4.0)])
    assert float(res.total(res.terms_of()).detach()) == pytest.approx(1.0 + 4.0 * 0.25)


# Mutant: "pde[0]" accepted as an alias for a PDE whose residuals are named by a dict.
def test_pde_0_is_refused_for_a_pde_with_named_residuals():
    named = lambda x, u: {"a": laplacian(u, x), "b": u}  # noqa: E731
    with pytest.raises(ProblemError, match=r"'pde\[0\]' names no residual.*pde\[a\], pde\[b\]"):
        residuals(named, weights={"pde[0]": 2.0})
    assert residuals(named, weights={"pde[b]": 2.0}).weight("pde[b]") == 2.0


# Mutants: the "one column per coordinate" warning given for a 1-D system whose residuals
# have one column each; the "fewer equations" warning given although a data condition
# supplies the missing information.
def test_residual_column_warnings_stay_silent_when_nothing_is_wrong():
    def system(x, u):  # one column each, in 1-D: no coordinate-per-column mistake
        return d(u, x, "x", component="u") - u[:, 1:], d(u, x, "x", "x", component="v")

    def one(x, u):  # one equation for two outputs
        return laplacian(u[:, :1], x) + u[:, :1]

    def cubic(x):
        return torch.cat([x**2, x**3], 1)

    def two(x):
        return torch.cat([quad(x), x[:, 1:]], 1)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        residuals(system, [Dirichlet(0.0)], f=cubic, domain=Interval(0, 1), outputs=("u", "v"))
        data = PointData([[0.5, 0.5]], [[1.0, 2.0]])
        residuals(one, [data], f=two, outputs=("u", "v"))
    with pytest.warns(UserWarning, match="fewer equations than unknowns"):
        residuals(one, [Dirichlet(0.0)], f=two, outputs=("u", "v"))


# Mutant: a residual of one column per point (an (n,) tensor times an (n, 1) one) let through
# when there are only two points.
def test_a_residual_with_one_column_per_point_is_refused_for_two_points():
    with pytest.raises(ProblemError, match=r"shape \(2, 2\), one column per point"):
        residuals(lambda x, u: x[:, 0] * laplacian(u, x), f=lambda x: x**3,
                  domain=Interval(0, 1), points={"interior": 2, "boundary": 2})  # fmt: skip


# Mutant: the derivative needs of a term counting derivatives of expressions (u²), which
# the model's jet cannot serve, as the model's own.
def test_derivative_needs_count_only_the_models_own_derivatives():
    res = residuals(lambda x, u: d(u * u, x, "x", "x") + u)
    assert (res.pde.order, res.pde.pairs, res.pde.fused) == (0, (), False)
    res = residuals(lambda x, u: d(u * u, x, "x") + d(u, x, "y", "y") + d(u, x, "x", "y"))
    assert (res.pde.order, res.pde.pairs) == (2, ((0, 1), (1, 1)))


# -- resampling and chunks --------------------------------------------------------------------


# Mutants: resampling a grid redrawing the same grid; seed 0 not keeping the plain draws of
# earlier versions (the seed given as is); another seed not combined with the run's.
def test_resampled_points_are_the_documented_draws():
    res = residuals(lambda x, u: laplacian(u, x) + u, points={**POINTS, "method": "grid"})
    grid = res.interior.x.clone()
    res.resample(seed=4)
    want = SQUARE.sample(16, method="uniform", seed=4)
    assert np.array_equal(res.interior.x.numpy(), want)
    assert not torch.equal(res.interior.x, grid)

    res = residuals(lambda x, u: laplacian(u, x) + u, points={**POINTS, "seed": 9})
    res.resample(seed=4)
    mixed = int(np.random.SeedSequence([9, 4]).generate_state(1)[0])
    assert np.array_equal(res.interior.x.numpy(), SQUARE.sample(16, method="sobol", seed=mixed))


# Mutants: row chunks that drop or repeat rows at their boundaries.
def test_chunks_cover_every_row_once():
    x = torch.arange(23, dtype=DT).reshape(23, 1)
    assert torch.equal(chunked(lambda t: 2 * t, x, chunk=5), 2 * x)
    res = residuals(lambda x, u: laplacian(u, x) + u - 2.5)  # |x² + y - 0.5|
    y = torch.rand(11, 2, dtype=DT, generator=torch.Generator().manual_seed(1))
    want = (y[:, 0] ** 2 + y[:, 1] - 0.5).abs()
    assert torch.allclose(res._pointwise_residual(y, chunk=4), want, rtol=0, atol=1e-12)


# -- error metrics, argument names, dependent unknowns ----------------------------------------


# Mutant: a relative error against a zero reference given as 0 (a perfect score) or Inf.
def test_relative_error_against_a_zero_reference_is_nan():
    ref = torch.tensor([[0.0, 1.0], [0.0, 2.0]], dtype=DT)
    m = error_metrics(ref + 0.1, ref, ["u", "v"])
    assert math.isnan(m["rel_l2_u"])
    assert m["rel_l2_v"] == pytest.approx(math.sqrt(0.02) / math.sqrt(5.0), rel=1e-12)
    assert m["rel_l2"] == pytest.approx(math.sqrt(0.04) / math.sqrt(5.0), rel=1e-12)
    assert math.isnan(error_metrics(ref[:, :1] + 1, ref[:, :1], ["u"])["rel_l2"])


# Mutant: pde(x, pts) taken for swapped arguments (both are named like points).
def test_swapped_arguments_need_the_first_named_otherwise():
    assert _named_u_x(lambda u, x: u)
    assert not _named_u_x(lambda x, pts: x)
    assert not _named_u_x(lambda x, u: x)


# Mutants: the singular-value threshold loosened; every unknown named instead of those in the
# dependence; the columns not scaled to unit norm (an unknown in other units looking
# dependent).
def test_entangled_unknowns_from_sensitivity_rows():
    names = ["a", "b", "c"]
    rows = [dict(zip(names, r)) for r in [[1.0, 2.0, 0.0], [2.0, 4.0, 1.0], [3.0, 6.0, -1.0]]]
    assert _entangled(rows, names) == ["a", "b"]  # b = 2a; c is independent of them
    nearly = [dict(zip("ab", r)) for r in [[1.0, 1.0], [1.0, 1.0 + 1e-5]]]
    assert _entangled(nearly, ["a", "b"]) == []  # smallest : largest singular value = 2.5e-6
    scaled = [dict(zip("ab", r)) for r in [[1.0, 0.0], [0.0, 1e-12], [1.0, 1e-12]]]
    assert _entangled(scaled, ["a", "b"]) == []  # independent, in very different units

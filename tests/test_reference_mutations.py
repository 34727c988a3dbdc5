"""Mutation-audit additions for :mod:`kanpde.reference`.

Each test pins a fact that a plausible slip in the reference solvers got past the rest of the
suite, which runs every solver only at the benchmark parameters (Burgers nu = 0.01/pi on
[-1, 1], Allen-Cahn eps = 1e-3 and k = 5, the cavity at Re = 100 with the default lid on a
square grid): a parameter silently replaced by its default passed everything. The checks are
mathematical: the Fourier-Bessel series of the Cole-Hopf solution, the heat-equation
(k = 0) and pure-reaction (eps = 0) limits of Allen-Cahn, which have closed forms, the mirror
symmetry and the momentum balance of steady Navier-Stokes, grid refinement, and NumPy's own
interpolation.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.interpolate import RegularGridInterpolator
from scipy.special import ive

from kanpde import reference as reference_pkg
from kanpde.reference import (
    Reference,
    allen_cahn,
    burgers,
    burgers_exact,
    cache_path,
    cached,
    get,
    graded_grid,
    lid_driven_cavity,
    shared_data_dir,
)
from kanpde.reference.cavity import solve_streamfunction, velocity_from_streamfunction

# ----------------------------------------------------------------------------- helpers


def burgers_series(x, t, nu, terms=200):
    r"""Cole-Hopf solution of Burgers with u(x, 0) = -sin(pi x) as a Fourier-Bessel series.

    With a = 1/(2 pi nu), phi(x, 0) = exp(-a cos(pi x)) = I0(a) + 2 sum (-1)^n I_n(a) cos(n pi x),
    so the heat equation gives phi(x, t) term by term (decay exp(-n^2 pi^2 nu t)), and
    u = -2 nu phi_x / phi. Independent of the solver's Gauss-Hermite quadrature. Scaled Bessel
    functions (ive = iv * exp(-a)) keep every term finite; the common factor cancels. The
    denominator cancels down to exp(-a cos(pi x)), so it is used only where a is small.
    """
    a = 1.0 / (2.0 * np.pi * nu)
    n = np.arange(1, terms + 1)
    x = np.asarray(x, dtype=float)[..., None]
    t = np.asarray(t, dtype=float)[..., None]
    c = (-1.0) ** n * ive(n, a) * np.exp(-(n**2) * np.pi**2 * nu * t)
    num = 4.0 * np.pi * nu * (c * n * np.sin(n * np.pi * x)).sum(-1)
    den = ive(0, a) + 2.0 * (c * np.cos(n * np.pi * x)).sum(-1)
    return num / den


def fd_matrices(x):
    """3-point first and second derivative matrices (interior rows) on a non-uniform grid."""
    h = np.diff(x)
    n = len(x)
    d1, d2 = np.zeros((n, n)), np.zeros((n, n))
    for i in range(1, n - 1):
        a, b = h[i - 1], h[i]
        d1[i, i - 1 : i + 2] = [-b / (a * (a + b)), (b - a) / (a * b), a / (b * (a + b))]
        d2[i, i - 1 : i + 2] = [2 / (a * (a + b)), -2 / (a * b), 2 / (b * (a + b))]
    return d1, d2


def momentum_residual(ref, nu, lo=0.1, hi=0.9):
    """Max |steady Navier-Stokes momentum residual| of (u, v, p) on [lo, hi]^2, and max |grad p|."""
    x, y = ref.axes
    u, v, p = (ref.values[k] for k in ("u", "v", "p"))
    d1x, d2x = fd_matrices(x)
    d1y, d2y = fd_matrices(y)
    dx, dy = (lambda f: d1x @ f), (lambda f: f @ d1y.T)
    lap = lambda f: d2x @ f + f @ d2y.T
    ru = u * dx(u) + v * dy(u) + dx(p) - nu * lap(u)
    rv = u * dx(v) + v * dy(v) + dy(p) - nu * lap(v)
    m = np.ix_((x > lo) & (x < hi), (y > lo) & (y < hi))
    res = max(np.abs(ru[m]).max(), np.abs(rv[m]).max())
    return res, max(np.abs(dx(p)[m]).max(), np.abs(dy(p)[m]).max())


# ----------------------------------------------------------------------------- Reference


def test_interpolate_is_cubic_from_four_points_per_axis():
    # The documented default is cubic "when every axis has at least 4 points": a 4 x 5 grid of
    # a cubic polynomial is then reproduced exactly (a cubic spline on 4 knots is the cubic
    # itself). With linear interpolation instead (a `> 4` slip) the error is 0.10.
    x, y = np.linspace(0.0, 1.0, 4), np.linspace(-1.0, 1.0, 5)
    f = lambda x, y: x**3 - 2.0 * x * y**2 + y
    xx, yy = np.meshgrid(x, y, indexing="ij")
    ref = Reference(("x", "y"), (x, y), {"f": f(xx, yy)})
    rng = np.random.default_rng(7)
    q = np.column_stack([rng.uniform(0, 1, 40), rng.uniform(-1, 1, 40)])
    np.testing.assert_allclose(ref.interpolate(q)[:, 0], f(q[:, 0], q[:, 1]), atol=1e-12)


def test_interpolate_one_dimensional_and_per_method():
    # A 1-D reference takes a flat array of points. Linear interpolation is np.interp exactly;
    # cubic interpolation reproduces a cubic. Asking for one method after the other must not
    # return the interpolant cached for the first (a cache keyed on the outputs alone would give
    # the cubic values for "linear": off by up to 0.088 here).
    x = np.linspace(-1.0, 2.0, 13)
    ref = Reference(("x",), (x,), {"f": x**3 - x, "g": np.cos(x)})
    q = np.random.default_rng(3).uniform(-1.0, 2.0, 50)
    for _ in range(2):
        np.testing.assert_allclose(ref.interpolate(q, ["f"])[:, 0], q**3 - q, atol=1e-12)
        lin = ref.interpolate(q, ["f"], method="linear")[:, 0]
        np.testing.assert_allclose(lin, np.interp(q, x, x**3 - x), rtol=0, atol=1e-14)
        both = ref.interpolate(q, ["g", "f"], method="linear")
        np.testing.assert_allclose(both[:, 0], np.interp(q, x, np.cos(x)), rtol=0, atol=1e-14)
        np.testing.assert_allclose(both[:, 1], lin, rtol=0, atol=0)


def test_interpolate_rounding_tolerance_scales_with_the_axis():
    # A point one ulp beyond a large axis end (t = 1000 from an affine map) is on the grid:
    # the tolerance is relative to the axis magnitude (one ulp at 1000 is 1.1e-13, more than
    # an absolute 64 eps = 1.4e-14). A true outside point still raises.
    t = np.linspace(0.0, 1000.0, 6)
    ref = Reference(("t",), (t,), {"u": 2.0 * t + 1.0})
    q = np.array([np.nextafter(1000.0, np.inf), 1000.0 * (1 + 4e-16)])
    np.testing.assert_allclose(ref.interpolate(q)[:, 0], 2001.0, rtol=1e-15)
    with pytest.raises(ValueError):
        ref.interpolate(np.array([1000.0 * (1 + 1e-12)]))


def test_reference_rejects_repeated_coordinates():
    # "Strictly increasing": a repeated node would make the grid interpolant ill-defined.
    with pytest.raises(ValueError, match="strictly increasing"):
        Reference(("x",), (np.array([0.0, 0.5, 0.5, 1.0]),), {"u": np.zeros(4)})


def test_cache_keeps_booleans_distinct_from_numbers(monkeypatch, tmp_path):
    # JSON has booleans; a flag must neither share a cache entry with the number 1 nor come
    # back from the cache as an integer.
    monkeypatch.setenv("KANPDE_CACHE", str(tmp_path))
    assert cache_path("toy", flag=True) != cache_path("toy", flag=1)
    x = np.linspace(0.0, 1.0, 3)
    make = lambda: Reference(("x",), (x,), {"u": x}, {"flag": True, "flags": (False, True)})
    for _ in range(2):  # a miss, then a hit
        ref = cached("toy", make, flag=True)
        assert ref.meta["flag"] is True and ref.meta["flags"] == [False, True]
        assert all(type(b) is bool for b in ref.meta["flags"])


def test_get_keys_the_cache_on_the_solver_version(monkeypatch, tmp_path):
    # get() must pass the solver's version into the key: after a version bump an old entry
    # (computed by other numerics) must not be served.
    monkeypatch.setenv("KANPDE_CACHE", str(tmp_path))
    get("burgers", nx=5, nt=3)
    solver, version = reference_pkg.SOLVERS["burgers"]
    monkeypatch.setitem(reference_pkg.SOLVERS, "burgers", (solver, version + "-bumped"))
    get("burgers", nx=5, nt=3)
    assert len(list(tmp_path.glob("burgers-*.h5"))) == 2


def test_cached_returns_the_result_when_the_cache_cannot_be_written(monkeypatch, tmp_path):
    # Documented: "If the cache directory cannot be written, the result is returned uncached
    # with a warning." (A regular file where the cache directory should be.) It raised:
    # cached() caught OSError, which results.write_atomic reports as a ResultsError.
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("")
    monkeypatch.setenv("KANPDE_CACHE", str(blocker))
    x = np.linspace(0.0, 1.0, 3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ref = cached("toy", lambda: Reference(("x",), (x,), {"u": x**2}), n=1)
    assert any("could not write cache file" in str(w.message) for w in caught)
    np.testing.assert_array_equal(ref.values["u"], x**2)


def test_shared_data_dir_default_is_next_to_the_repository(monkeypatch, tmp_path):
    # Documented fallback: <repository root>/../shared/data when KANPDE_SHARED_DATA is unset.
    # A repository laid out in tmp_path (the real one may have no shared folder beside it).
    from kanpde.reference import published

    monkeypatch.delenv("KANPDE_SHARED_DATA", raising=False)
    module = tmp_path / "work" / "repo" / "kanpde" / "reference" / "published.py"
    module.parent.mkdir(parents=True)
    monkeypatch.setattr(published, "__file__", str(module))
    expected = tmp_path / "work" / "shared" / "data"
    assert shared_data_dir() is None  # not there yet
    expected.mkdir(parents=True)
    assert shared_data_dir() == expected


# ----------------------------------------------------------------------------- Burgers


@pytest.mark.parametrize("nu", [0.1, 0.05])
def test_burgers_matches_fourier_bessel_series_for_other_viscosity_and_interval(nu):
    # Another nu, x interval and time range than the benchmark: the solver must use all three.
    # Measured 5.8e-15 (nu = 0.1) and 1.1e-13 (nu = 0.05; the series' own cancellation);
    # the benchmark nu in their place is off by 0.6 - 0.8, the interval [-1, 1] by O(1).
    ref = burgers(nx=41, nt=11, nu=nu, x_range=(0.5, 2.5), t_range=(0.0, 0.5))
    x, t = np.linspace(0.5, 2.5, 41), np.linspace(0.0, 0.5, 11)
    for a, b in zip(ref.axes, (x, t), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-15)
    expected = burgers_series(x[:, None], t[None, 1:], nu)
    assert np.abs(ref.values["u"][:, 1:] - expected).max() < 1e-12
    np.testing.assert_allclose(ref.values["u"][:, 0], -np.sin(np.pi * x), atol=1e-15)


def test_burgers_vanishes_exactly_at_every_integer():
    # u(x, 0) = -sin(pi x) is odd about every integer, so u(m, t) = 0 for all integers m (the
    # module documents exact zeros there, not just at the walls +-1).
    u, _ = burgers_exact(np.array([-3.0, 0.0, 2.0, 5.0]), 0.3, nu=0.05)
    assert np.all(u == 0.0)


def test_burgers_fixed_quadrature_order_is_used():
    # A fixed n_quad is the Gauss-Hermite order used. At nu = 0.05, t = 0.5 the 32-point rule
    # is accurate to 9.2e-9 against the series, 16 points only to 4.9e-5.
    x = np.linspace(-1.0, 1.0, 41)
    u, info = burgers_exact(x, 0.5, nu=0.05, n_quad=32)
    assert info["n_quad"] == 32 and info["quad_change"] is None
    assert np.abs(u - burgers_series(x, 0.5, 0.05)).max() < 1e-7


def test_burgers_passes_the_quadrature_tolerance_on():
    # The adaptive order doubles from 64 until two successive orders agree to tol. At
    # nu = 0.1 the orders 64 and 128 agree to 2.7e-8: tol = 1e-2 stops at 128, the default
    # 1e-13 needs more.
    loose = burgers(nx=9, nt=3, nu=0.1, tol=1e-2).meta
    assert loose["n_quad"] == 128 and loose["quad_change"] <= 1e-2
    assert burgers(nx=9, nt=3, nu=0.1).meta["n_quad"] > 128


# ----------------------------------------------------------------------------- Allen-Cahn


def test_allen_cahn_heat_limit_matches_eigenfunction_series():
    # k = 0: w = u + 1 solves w_t = eps w_xx, w(+-1) = 0, w(x, 0) = 1 + x^2 cos(pi x), so
    # w = sum_m b_m exp(-eps lam_m^2 t) cos(lam_m x), lam_m = (m + 1/2) pi (even modes only),
    # b_m = int_{-1}^{1} w0 cos(lam_m x) dx (400-point Gauss-Legendre: exact to rounding).
    # Pins the diffusion coefficient, the folded Chebyshev operator and the linear shift (ETDRK4
    # is exact for a linear problem). Measured 4.3e-14; eps = 1e-3 in place of 0.1 gives 0.21,
    # the benchmark k = 5 in place of 0 gives 0.52.
    eps = 0.1
    ref = allen_cahn(nx=41, nt=6, t_end=0.5, eps=eps, k=0.0, n_cheb=64, dt=0.01)
    x, t = ref.axes
    lam = (np.arange(300) + 0.5) * np.pi
    s, w = np.polynomial.legendre.leggauss(400)
    b = (w * (1.0 + s**2 * np.cos(np.pi * s))) @ np.cos(np.outer(s, lam))
    decay = np.exp(-eps * lam**2 * t[1:, None])  # (nt - 1, modes)
    expected = np.cos(np.outer(x, lam)) @ (b * decay).T - 1.0
    assert np.abs(ref.values["u"][:, 1:] - expected).max() < 1e-11
    np.testing.assert_allclose(ref.values["u"][:, 0], x**2 * np.cos(np.pi * x), atol=1e-14)


def test_allen_cahn_reaction_limit_matches_logistic_closed_form():
    # eps = 0: every point follows u_t = k (u - u^3), solved by
    # u = u0 e^{kt} / sqrt(1 + u0^2 (e^{2kt} - 1)); u = -1 at the walls is a fixed point.
    # Pins the reaction rate (k = 2, not the benchmark's 5) in both the linear part and the
    # nonlinearity. Measured 6.6e-11 (time and interpolation error); the benchmark k = 5 gives
    # 0.80, a stray diffusion 1e-3 u_xx 0.044.
    k = 2.0
    ref = allen_cahn(nx=41, nt=6, t_end=1.0, eps=0.0, k=k, n_cheb=160, dt=0.002)
    x, t = ref.axes
    u0 = (x**2 * np.cos(np.pi * x))[:, None]
    e = np.exp(k * t[None, :])
    expected = u0 * e / np.sqrt(1.0 + u0**2 * (e**2 - 1.0))
    assert np.abs(ref.values["u"] - expected).max() < 1e-9


# ----------------------------------------------------------------------------- cavity


def test_cavity_custom_lid_obeys_mirror_symmetry():
    # Steady Navier-Stokes is invariant under x -> 1 - x with u -> -u: the lid -U(1 - x) gives
    # u'(x, y) = -u(1 - x, y), v'(x, y) = v(1 - x, y), p'(x, y) = p(1 - x, y). The graded grid
    # is symmetric, so the discrete solutions obey it too (measured 2e-15). An asymmetric lid
    # tests that the lid function reaches the solver, not only the boundary rows of the output.
    lid = lambda x: np.sin(np.pi * x) ** 2 * (1.0 + x)
    kw = dict(n=24, out_n=24, extrapolate=False)
    a = lid_driven_cavity(lid=lid, **kw)
    b = lid_driven_cavity(lid=lambda x: -lid(1.0 - x), **kw)
    np.testing.assert_allclose(a.values["u"][:, -1], lid(a.axes[0]), atol=1e-15)
    assert np.abs(b.values["u"] + a.values["u"][::-1]).max() < 1e-12
    assert np.abs(b.values["v"] - a.values["v"][::-1]).max() < 1e-12
    assert np.abs(b.values["p"] - a.values["p"][::-1]).max() < 1e-12
    # and it is not the default lid's flow: the two lids drive very different fields
    default = lid_driven_cavity(**kw)
    assert np.abs(default.values["u"] - a.values["u"]).max() > 0.1


def test_cavity_other_reynolds_number_satisfies_momentum_balance():
    # At Re = 10 (nu = 0.1) the returned (u, v, p) satisfy u.grad u + grad p = nu lap u, checked
    # with 3-point differences on [0.1, 0.9]^2 (away from the singular lid corners). Measured
    # 0.099 (n = 20) and 0.025 (n = 40) against |grad p| ~ 3: second order, ratio 4.0. A solver
    # or pressure that kept nu = 1/100 leaves a non-gradient 0.09 lap u: residual O(1).
    res = {
        n: momentum_residual(lid_driven_cavity(re=10.0, n=n, out_n=n, extrapolate=False), 0.1)
        for n in (20, 40)
    }
    assert res[40][0] < 0.035 and res[40][1] > 2.0
    assert res[20][0] / res[40][0] > 3.0


def test_streamfunction_solver_on_a_non_square_grid():
    # solve_streamfunction takes separate x and y grids. On graded x (40 intervals) and uniform
    # y (30 intervals) it must agree with a refined square-grid solution (graded, 80) to the
    # discretisation error. Measured max abs differences: u 0.016, v 0.0075 (|u| <= 1);
    # vorticity 0.054 at nodes >= 5 from the walls and 0.63 on the side walls x = 0, 1
    # (|omega| up to 13; the lid corners make the top and bottom rows worse). Side-wall
    # vorticity from the y spacings gives 0.56 and 3.9; difference operators or the lid taken
    # from the other axis fail or raise (shapes differ).
    gx, gy = graded_grid(40), np.linspace(0.0, 1.0, 31)
    psi, om, _ = solve_streamfunction(gx, gy, re=100.0)
    u, v = velocity_from_streamfunction(gx, gy, psi, 4 * gx * (1 - gx))
    gf = graded_grid(80)
    pf, of, _ = solve_streamfunction(gf, gf, re=100.0)
    uf, vf = velocity_from_streamfunction(gf, gf, pf, 4 * gf * (1 - gf))
    pts = np.stack(np.meshgrid(gx, gy, indexing="ij"), -1).reshape(-1, 2)
    on = lambda f: RegularGridInterpolator((gf, gf), f, method="cubic")(pts).reshape(psi.shape)
    assert np.abs(on(uf) - u).max() < 0.025
    assert np.abs(on(vf) - v).max() < 0.012
    err = np.abs(on(of) - om)
    assert err[5:-5, 5:-5].max() < 0.1
    assert err[[0, -1], 1:-1].max() < 1.0

"""Reference solvers (kanpde.reference) against published data and first principles.

Tolerances against the data files sit just above the differences measured when the
solvers were written; see the module docstrings in kanpde/reference for the numbers.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy.special import gammaln, logsumexp, roots_hermite

from kanpde.reference import (
    Reference,
    allen_cahn,
    burgers,
    burgers_exact,
    cache_dir,
    cache_path,
    cached,
    get,
    graded_grid,
    lid_driven_cavity,
    load_allen_cahn,
    load_burgers_shock,
    load_cavity,
    shared_data_dir,
)
from kanpde.reference import core as reference_core
from kanpde.reference.allen_cahn import barycentric_matrix, chebyshev_points
from kanpde.reference.burgers import hermite_rule
from kanpde.reference.cavity import (
    _wall_coefficients,
    solve_streamfunction,
    velocity_from_streamfunction,
)

C1 = np.array([1.0, -8.0, 0.0, 8.0, -1.0]) / 12.0  # 4th-order central first derivative
C2 = np.array([-1.0, 16.0, -30.0, 16.0, -1.0]) / 12.0  # 4th-order central second derivative


def rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def data_dir() -> Path:
    folder = shared_data_dir()
    if folder is None:
        pytest.skip("published data folder not found (set KANPDE_SHARED_DATA)")
    return folder


@pytest.fixture(scope="module")
def burgers_ref() -> Reference:
    return burgers()


@pytest.fixture(scope="module")
def allen_cahn_ref() -> Reference:
    return allen_cahn()


@pytest.fixture(scope="module")
def cavity_ref() -> Reference:
    return lid_driven_cavity()


# ----------------------------------------------------------------------------- Reference


def _toy() -> Reference:
    x = np.linspace(0.0, 1.0, 5)
    y = np.linspace(-1.0, 1.0, 7)
    xx, yy = np.meshgrid(x, y, indexing="ij")
    return Reference(
        ("x", "y"), (x, y), {"a": xx + 2 * yy, "b": xx**3 - yy**2 * xx}, {"solver": "toy"}
    )


def _counting(make=_toy):
    """A ``compute`` for :func:`cached` that builds ``make()`` and the list of its calls."""
    calls = []

    def compute() -> Reference:
        calls.append(1)
        return make()

    return compute, calls


def _toy_with_meta() -> Reference:
    ref = _toy()
    ref.meta.update(grid=(5, 7), nested={"a": 1.5, "b": [1, 2]})
    return ref


def _toy_with_nan() -> Reference:
    ref = _toy()
    ref.values["a"][0, 0] = np.nan
    return ref


def test_points_and_flat_share_order():
    ref = _toy()
    pts, vals = ref.points(), ref.flat()
    assert pts.shape == (35, 2) and vals.shape == (35, 2)
    np.testing.assert_array_equal(vals[:, 0], pts[:, 0] + 2 * pts[:, 1])
    x, y = pts.T
    np.testing.assert_array_equal(ref.flat(["b"])[:, 0], x**3 - y**2 * x)
    assert ref.flat(["b", "a"]).tolist() == vals[:, ::-1].tolist()
    with pytest.raises(KeyError):
        ref.flat(["nope"])


def test_interpolate_cubic_and_linear():
    ref = _toy()
    rng = np.random.default_rng(1)
    q = np.column_stack([rng.uniform(0, 1, 50), rng.uniform(-1, 1, 50)])
    exact = np.column_stack([q[:, 0] + 2 * q[:, 1], q[:, 0] ** 3 - q[:, 1] ** 2 * q[:, 0]])
    # Cubic splines reproduce cubic polynomials.
    np.testing.assert_allclose(ref.interpolate(q), exact, atol=1e-12)
    np.testing.assert_allclose(ref.interpolate(ref.points(), ["a"]), ref.flat(["a"]), atol=1e-14)
    np.testing.assert_allclose(
        ref.interpolate(q, ["a"], method="linear")[:, 0], exact[:, 0], atol=1e-12
    )
    # Fewer than 4 points on an axis: linear.
    thin = Reference(
        ("x", "t"),
        (np.array([0.0, 1.0]), np.array([0.0, 1.0])),
        {"u": np.array([[0.0, 1.0], [2.0, 3.0]])},
    )
    assert thin.interpolate(np.array([[0.5, 0.5]]))[0, 0] == pytest.approx(1.5)
    with pytest.raises(ValueError):
        ref.interpolate(np.array([[2.0, 0.0]]))


def test_reference_validation():
    x = np.linspace(0, 1, 3)
    with pytest.raises(ValueError):
        Reference(("x",), (x,), {"u": np.zeros(4)})
    with pytest.raises(ValueError):
        Reference(("x", "t"), (x,), {"u": np.zeros(3)})
    with pytest.raises(ValueError):
        Reference(("x",), (x[::-1],), {"u": np.zeros(3)})


# ----------------------------------------------------------------------------- cache


def test_cache_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("KANPDE_CACHE", str(tmp_path / "k"))
    assert cache_dir() == tmp_path / "k"
    monkeypatch.delenv("KANPDE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "kanpde"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == Path.home() / ".cache" / "kanpde"


def test_cached_round_trip_and_hit(monkeypatch, tmp_path):
    monkeypatch.setenv("KANPDE_CACHE", str(tmp_path))
    compute, calls = _counting(_toy_with_meta)
    first = cached("toy", compute, solver_version="3", n=5, alpha=0.25, tag="x")
    second = cached("toy", compute, solver_version="3", alpha=0.25, n=5, tag="x")
    assert len(calls) == 1  # second call is a cache hit (keyword order irrelevant)
    path = cache_path("toy", "3", n=5, alpha=0.25, tag="x")
    assert path.parent == tmp_path and path.is_file() and path.suffix == ".h5"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp files left
    for ref in (first, second):
        assert ref.names == ("x", "y")
        assert ref.meta == {"solver": "toy", "grid": [5, 7], "nested": {"a": 1.5, "b": [1, 2]}}
    for a, b in zip(first.axes, second.axes, strict=True):
        np.testing.assert_array_equal(a, b)
    assert list(second.values) == ["a", "b"]
    for k in first.values:
        np.testing.assert_array_equal(first.values[k], second.values[k])
    # Different parameters or solver version: different entries.
    cached("toy", compute, solver_version="3", n=6, alpha=0.25, tag="x")
    cached("toy", compute, solver_version="4", n=5, alpha=0.25, tag="x")
    assert len(calls) == 3
    with h5py.File(path, "r") as f:  # plain HDF5, readable without kanpde
        assert f["values/0"].shape == (5, 7)


def test_cache_key_includes_solver_version_and_format(monkeypatch, tmp_path):
    # Catches a cache key without solver_version: versions overwrite each other's entry and
    # every switch recomputes with an "unreadable cache" warning.
    monkeypatch.setenv("KANPDE_CACHE", str(tmp_path))
    assert cache_path("toy", "3", n=1) != cache_path("toy", "4", n=1)
    compute, calls = _counting()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for version in ("3", "4", "3", "4"):
            cached("toy", compute, solver_version=version, n=1)
    assert len(calls) == 2  # one computation per version, then hits
    assert len(list(tmp_path.glob("toy-*.h5"))) == 2
    old = cache_path("toy", "3", n=1)
    monkeypatch.setattr(reference_core, "CACHE_FORMAT", "999")
    assert cache_path("toy", "3", n=1) != old  # the documented key includes CACHE_FORMAT


def test_cached_recomputes_corrupt_file(monkeypatch, tmp_path):
    monkeypatch.setenv("KANPDE_CACHE", str(tmp_path))
    compute, calls = _counting()
    cached("toy", compute, n=1)
    path = cache_path("toy", n=1)
    path.write_bytes(b"not an hdf5 file")
    with pytest.warns(RuntimeWarning, match="unreadable cache"):
        ref = cached("toy", compute, n=1)
    assert len(calls) == 2
    np.testing.assert_array_equal(ref.values["a"], _toy().values["a"])
    # Truncated file (e.g. a crash during a non-atomic copy).
    path.write_bytes(path.read_bytes()[:300])
    with pytest.warns(RuntimeWarning):
        cached("toy", compute, n=1)
    assert len(calls) == 3
    cached("toy", compute, n=1)  # repaired: a hit again
    assert len(calls) == 3


def test_get_fills_defaults_and_rejects_unhashable(monkeypatch, tmp_path):
    monkeypatch.setenv("KANPDE_CACHE", str(tmp_path))
    a = get("burgers", nx=17, nt=5)
    b = get("burgers", nx=17, nt=5, nu=0.01 / np.pi, x_range=(-1.0, 1.0))
    assert len(list(tmp_path.glob("burgers-*.h5"))) == 1
    np.testing.assert_array_equal(a.values["u"], b.values["u"])
    with pytest.raises(TypeError):
        get("lid_driven_cavity", lid=lambda x: x * (1 - x))
    with pytest.raises(KeyError):
        get("nope")


# ----------------------------------------------------------------------------- Burgers


def test_hermite_rule_log_weights():
    z, log_w = hermite_rule(40)
    x, w = np.polynomial.hermite.hermgauss(40)
    np.testing.assert_allclose(z, x, atol=1e-12)
    np.testing.assert_allclose(np.exp(log_w), w, rtol=1e-10)
    z, log_w = hermite_rule(2048)  # weights down to exp(-4000): finite in log space
    assert np.all(np.isfinite(log_w))
    assert np.exp(log_w).sum() == pytest.approx(np.sqrt(np.pi), rel=1e-12)
    # The checks below catch a wrong log of the rescaling factor (only the outer nodes,
    # weights < 1e-200, are rescaled; their sum is invisible next to sqrt(pi)).
    # Against scipy's independently computed weights where they do not underflow:
    # measured 1.1e-13; a log-scale error shifts them by >= log(1e100) = 230.
    w = roots_hermite(2048)[1]
    ok = w > 1e-290
    assert np.abs(log_w[ok] - np.log(w[ok])).max() < 1e-12
    # Where they do (half of the nodes): the rule is exact for z^(2m), 2m <= 4095, and
    # the sum of z^(2m) w is dominated by the nodes near |z| = sqrt(m), weights down to
    # exp(-2047). Measured <= 1 ulp of gammaln(m + 1/2) (worst 1/3 of the tolerance).
    m = np.r_[np.arange(0, 2048, 31), 2047]
    moments = logsumexp(log_w + 2.0 * m[:, None] * np.log(np.abs(z)), axis=1)
    np.testing.assert_allclose(moments, gammaln(m + 0.5), rtol=1e-15, atol=1e-13)


def test_burgers_matches_raissi_data(burgers_ref, data_dir):
    data = load_burgers_shock(data_dir / "burgers_shock.mat")
    for a, b in zip(burgers_ref.axes, data.axes, strict=True):
        np.testing.assert_array_equal(a, b)  # the default grid is the file's grid exactly
    u, ud = burgers_ref.values["u"], data.values["u"]
    # Measured 4.2e-11 (max abs) at x = -0.0039, t = 0.66: the file's own quadrature error
    # (converged to 1e-15 here, confirmed with 40-digit mpmath).
    assert np.abs(u - ud).max() < 5e-11
    assert rel_l2(u, ud) < 4e-12  # measured 2.9e-12
    assert burgers_ref.meta["quad_change"] < 1e-13


def test_burgers_initial_and_boundary_conditions(burgers_ref):
    x = burgers_ref.axes[0]
    u = burgers_ref.values["u"]
    np.testing.assert_allclose(u[:, 0], -np.sin(np.pi * x), atol=1e-12, rtol=0)
    assert np.all(u[0, :] == 0.0) and np.all(u[-1, :] == 0.0)
    # Without the exact-zero rule the quadrature itself is zero at the walls to rounding.
    uw, _ = burgers_exact(np.array([-1 + 1e-13, 1 - 1e-13]), 0.7)
    assert np.abs(uw).max() < 1e-11
    # Small t: the quadrature converges to the initial condition.
    us, _ = burgers_exact(x, 1e-10)
    np.testing.assert_allclose(us, -np.sin(np.pi * x), atol=1e-9)


def test_burgers_pde_residual_away_from_shock():
    rng = np.random.default_rng(0)
    n, h, nu = 400, 1e-3, 0.01 / np.pi
    x = rng.uniform(0.2, 0.9, n) * rng.choice([-1.0, 1.0], n)
    t = rng.uniform(0.1, 0.9, n)
    s = (np.arange(5) - 2) * h
    ux = burgers_exact(x[:, None] + s, t[:, None], nu=nu)[0]
    ut = burgers_exact(x[:, None], t[:, None] + s, nu=nu)[0]
    u = ux[:, 2]
    res = ut @ C1 / h + u * (ux @ C1) / h - nu * (ux @ C2) / h**2
    # 4th-order differences: measured 2.3e-9; a 1% error in nu gives 6e-4.
    assert np.abs(res).max() < 1e-8


# ----------------------------------------------------------------------------- Allen–Cahn


def test_barycentric_matrix_is_exact_for_polynomials():
    nodes = chebyshev_points(12)
    x = np.linspace(-1, 1, 31)
    f = lambda s: s**12 - 3 * s**5 + 1
    np.testing.assert_allclose(barycentric_matrix(nodes, x) @ f(nodes), f(x), atol=1e-12)


def test_allen_cahn_matches_deepxde_data(allen_cahn_ref, data_dir):
    data = load_allen_cahn(data_dir / "Allen_Cahn.mat")
    for a, b in zip(allen_cahn_ref.axes, data.axes, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-15)
    u, ud = allen_cahn_ref.values["u"], data.values["u"]
    # Measured 4.894e-4 (max abs, at t = 0.56 near the fronts x = +-0.58) and 1.569e-4
    # (rel L2). The solver is converged to ~3e-9; the difference is the file's error
    # (it is also 6.6e-8 asymmetric in x, the exact solution is even). A 1% change of the
    # diffusion coefficient or 0.2% of the reaction rate already fails these bounds.
    assert np.abs(u - ud).max() < 5.0e-4
    assert rel_l2(u, ud) < 1.6e-4


def test_allen_cahn_initial_boundary_and_symmetry(allen_cahn_ref):
    x = allen_cahn_ref.axes[0]
    u = allen_cahn_ref.values["u"]
    np.testing.assert_allclose(u[:, 0], x**2 * np.cos(np.pi * x), atol=1e-12, rtol=0)
    assert np.all(u[0, :] == -1.0) and np.all(u[-1, :] == -1.0)
    assert np.abs(u - u[::-1]).max() < 1e-10  # even initial data stay even
    assert np.abs(u).max() <= 1.0 + 1e-10  # maximum principle


def test_allen_cahn_pde_residual():
    eps, k = 1e-3, 5.0
    ref = allen_cahn(nx=2001, nt=101, t_end=0.1, n_cheb=256)
    u = ref.values["u"]
    h = ref.axes[0][1] - ref.axes[0][0]
    dt = ref.axes[1][1] - ref.axes[1][0]
    c = u[2:-2, 2:-2]
    ut = sum(w * u[2:-2, j : u.shape[1] - 4 + j] for j, w in enumerate(C1)) / dt
    uxx = sum(w * u[j : u.shape[0] - 4 + j, 2:-2] for j, w in enumerate(C2)) / h**2
    res = ut - eps * uxx - k * (c - c**3)
    # Measured 2.3e-5 (4th-order differences, |u_t| up to 1.9); eps * 1.01 gives 1.0e-4.
    assert np.abs(res).max() < 4e-5


def test_allen_cahn_etdrk4_is_fourth_order_in_time():
    # Catches a wrong ETDRK4 stage (e.g. 2 N(a) - N(u) instead of 2 N(b) - N(u) in the third
    # stage: 3rd order) and a solver that takes fewer steps than requested.
    run = lambda dt: allen_cahn(nx=41, nt=5, t_end=0.4, n_cheb=64, dt=dt)
    fine = run(0.02 / 32).values["u"]
    err = {dt: np.abs(run(dt).values["u"] - fine).max() for dt in (0.02, 0.01, 0.005)}
    # Measured error ratios per halving 14.8 and 15.4 (-> 16); the third-stage mutant gives
    # 7.2 / 7.6 (3rd order), half the requested steps gives 31. Bounds: order 3.5 to 4.3.
    for a, b in ((0.02, 0.01), (0.01, 0.005)):
        assert 2**3.5 < err[a] / err[b] < 2**4.3
    # Measured 1.354e-6; twice as long steps give 2.0e-5.
    assert err[0.01] < 1.5e-6
    # dt is the largest step, shrunk to fit a whole number of steps per output interval
    # (0.1 here): 0.04 -> 3 steps, 0.03 -> 4, 0.02 -> 5.
    for dt, steps in ((0.04, 3), (0.03, 4), (0.02, 5)):
        h = allen_cahn(nx=5, nt=2, t_end=0.1, n_cheb=8, dt=dt).meta["dt"]
        assert h <= dt and h == pytest.approx(0.1 / steps, rel=1e-12)


@pytest.mark.slow
def test_allen_cahn_converged_in_resolution(allen_cahn_ref):
    fine = allen_cahn(n_cheb=768, dt=5e-4)
    assert np.abs(fine.values["u"] - allen_cahn_ref.values["u"]).max() < 1e-8


# ----------------------------------------------------------------------------- cavity


def test_graded_grid_nests():
    g = graded_grid(100)
    assert g[0] == 0.0 and g[-1] == 1.0 and len(g) == 101
    w = np.diff(g)
    assert w[49] / w[0] == pytest.approx(5.0, rel=1e-12)
    np.testing.assert_allclose(graded_grid(200)[::2], g, atol=1e-15)
    np.testing.assert_allclose(g, 1 - g[::-1], atol=1e-15)
    np.testing.assert_allclose(graded_grid(10, ratio=1.0), np.linspace(0, 1, 11))


def test_cavity_matches_comsol_data(cavity_ref, data_dir):
    data = load_cavity(data_dir / "lid_driven_a4.dat")
    for a, b in zip(cavity_ref.axes, data.axes, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)  # the file's graded grid
    errs = {}
    for k in ("u", "v"):
        a, b = cavity_ref.values[k], data.values[k]
        errs[k] = (rel_l2(a, b), np.abs(a - b).max())
    # Measured rel L2 1.96e-4 (u), 2.01e-4 (v); max 2.70e-4 (u, on the lid, where the
    # file departs from 4x(1-x) by exactly that), 2.54e-4 (v). Our own error is ~4e-5.
    assert errs["u"][0] < 2.2e-4 and errs["v"][0] < 2.2e-4
    assert errs["u"][1] < 3.0e-4 and errs["v"][1] < 3.0e-4
    # Pressure up to a constant. The four corner nodes are excluded: the velocity gradient
    # jumps at the lid corners, so p is log-singular there and nodal values depend on the
    # mesh. Measured 1.03e-3 (rel L2), and 4.9e-4 at >= 5 nodes from the walls.
    mask = np.ones(data.shape, bool)
    mask[[0, 0, -1, -1], [0, -1, 0, -1]] = False
    inner = np.zeros(data.shape, bool)
    inner[5:-5, 5:-5] = True
    for m, tol in ((mask, 1.1e-3), (inner, 5.5e-4)):
        p, pd = cavity_ref.values["p"][m], data.values["p"][m]
        assert rel_l2(p - p.mean(), pd - pd.mean()) < tol
    # With the corners: 1.75e-2, nearly all from the two lid corners, where our p and the
    # file's differ by 0.091 (the README's reason for setting no target on the PINN's p).
    p, pd = cavity_ref.values["p"], data.values["p"]
    p, pd = p - p.mean(), pd - pd.mean()
    assert 1.5e-2 < rel_l2(p, pd) < 2.0e-2
    np.testing.assert_allclose(np.abs(p - pd)[[0, -1], [-1, -1]], 0.0914, atol=2e-3)


def test_cavity_boundary_conditions_and_mass(cavity_ref):
    x, y = cavity_ref.axes
    u, v, p = (cavity_ref.values[k] for k in ("u", "v", "p"))
    np.testing.assert_allclose(u[:, -1], 4 * x * (1 - x), atol=1e-15)
    for f in (u[0, :], u[-1, :], u[:, 0], v[0, :], v[-1, :], v[:, 0], v[:, -1]):
        assert np.all(f == 0.0)
    # Zero net flux through every grid line (psi = 0 on all walls); trapezoid rule.
    wx = np.r_[x[1] - x[0], x[2:] - x[:-2], x[-1] - x[-2]] / 2
    wy = np.r_[y[1] - y[0], y[2:] - y[:-2], y[-1] - y[-2]] / 2
    flux_v = np.abs(wx @ v).max() / (wx @ np.abs(v)).max()
    flux_u = np.abs(u @ wy).max() / (np.abs(u) @ wy).max()
    # Measured 1.2e-4 (v) and 4.1e-4 (u): trapezoid error across the lid boundary layer.
    assert flux_v < 2e-4 and flux_u < 5e-4
    pw = np.outer(wx, wy)
    assert abs((p * pw).sum()) < 1e-14  # documented convention: zero area mean


def test_cavity_discrete_divergence_free():
    # On the solver grid, u = D_y psi and v = -D_x psi: the discrete divergence D_x u + D_y v
    # vanishes to rounding at interior nodes (difference operators commute).
    g = graded_grid(40)
    psi, om, info = solve_streamfunction(g, g, re=100.0)
    lid = 4 * g * (1 - g)
    u, v = velocity_from_streamfunction(g, g, psi, lid)
    h = np.diff(g)
    hm, hp = h[:-1], h[1:]
    cm, c0, cp = -hp / (hm * (hm + hp)), (hp - hm) / (hm * hp), hm / (hp * (hm + hp))
    ux = cm[:, None] * u[:-2, 1:-1] + c0[:, None] * u[1:-1, 1:-1] + cp[:, None] * u[2:, 1:-1]
    vy = cm[None, :] * v[1:-1, :-2] + c0[None, :] * v[1:-1, 1:-1] + cp[None, :] * v[1:-1, 2:]
    # Rows/columns next to the walls use the wall velocities (boundary data), skip them.
    div = (ux + vy)[1:-1, 1:-1]
    assert np.abs(div).max() < 1e-10 * np.abs(ux).max()
    assert info["iterations"] < 15


def test_cavity_momentum_residual(cavity_ref):
    x, y = cavity_ref.axes
    u, v, p = (cavity_ref.values[k] for k in ("u", "v", "p"))
    h = np.diff(x)
    hm, hp = h[:-1], h[1:]
    d1 = np.zeros((len(x), len(x)))
    d2 = np.zeros_like(d1)
    for i in range(1, len(x) - 1):
        a, b = hm[i - 1], hp[i - 1]
        d1[i, i - 1 : i + 2] = [-b / (a * (a + b)), (b - a) / (a * b), a / (b * (a + b))]
        d2[i, i - 1 : i + 2] = [2 / (a * (a + b)), -2 / (a * b), 2 / (b * (a + b))]
    dx, dy = (lambda f: d1 @ f), (lambda f: f @ d1.T)
    lap = lambda f: d2 @ f + f @ d2.T
    nu = 1e-2
    ru = u * dx(u) + v * dy(u) + dx(p) - nu * lap(u)
    rv = u * dx(v) + v * dy(v) + dy(p) - nu * lap(v)
    s = slice(10, -10)
    # Second-order differences on the 101-point output grid, >= 10 nodes from the walls:
    # measured 1.7e-3 / 3.2e-3 against |grad p| up to 1.3; a sign error in p gives O(1).
    assert np.abs(ru[s, s]).max() < 2.5e-3
    assert np.abs(rv[s, s]).max() < 4.0e-3


def test_cavity_other_options_run():
    ref = lid_driven_cavity(n=40, out_n=30, wall="thom")  # non-nested output: cubic resampling
    assert ref.shape == (31, 31) and set(ref.values) == {"u", "v", "p"}
    np.testing.assert_allclose(ref.values["u"][:, -1], 4 * ref.axes[0] * (1 - ref.axes[0]))
    # Catches resampling with transposed ("xy") axes (u off by 1.2). The nested output
    # (out_n = 40) holds the n = 40 level exactly and the n = 20 level as its cubic spline,
    # which the cubic spline on the finer grid reproduces (nested knots). So interpolating
    # it equals resampling each level directly: measured 6.7e-16 (u, v), and p up to a
    # constant (zero mean on another grid) 3.9e-16.
    nested = lid_driven_cavity(n=40, out_n=40, wall="thom")
    diff = ref.flat(["u", "v", "p"]) - nested.interpolate(ref.points(), ["u", "v", "p"])
    assert np.abs(diff[:, :2]).max() < 1e-12
    assert np.ptp(diff[:, 2]) < 1e-12
    ref = lid_driven_cavity(lid=lambda x: np.sin(np.pi * x) ** 2, n=24, out_n=12, extrapolate=False)
    assert np.all(np.isfinite(ref.values["p"]))
    with pytest.raises(ValueError):
        lid_driven_cavity(n=42)


def test_cavity_wall_vorticity_formulas_are_exact_for_polynomials():
    # Catches a wrong wall-vorticity coefficient (e.g. Thom's -psi_n / s1 for -2 psi_n / s1).
    # psi_nn = a1 psi(s1) + a2 psi(s2) + a_s psi_n at a wall with psi = 0: exact for
    # quadratics (Thom) and cubics (Jensen). Measured 2.2e-15 (relative); that mutant: 21.
    s1, s2 = 0.013, 0.029
    for wall, deg in (("thom", 2), ("jensen", 3)):
        a1, a2, a_s = _wall_coefficients(s1, s2, wall)
        c = np.array([0.7, -1.3, 0.4]) * (np.arange(3) < deg)  # psi = c0 s + c1 s^2 + c2 s^3
        psi = lambda s, c=c: c[0] * s + c[1] * s**2 + c[2] * s**3
        assert a1 * psi(s1) + a2 * psi(s2) + a_s * c[0] == pytest.approx(2 * c[1], rel=1e-12)


def test_cavity_thom_wall_converges_to_comsol_data(data_dir):
    # Catches a wrong Thom wall formula end to end (-psi_n / s1 for -2 psi_n / s1: u off by
    # 0.4); until now wall="thom" was only checked for finite output.
    data = load_cavity(data_dir / "lid_driven_a4.dat")
    err = {}
    for n in (20, 40):
        ref = lid_driven_cavity(n=n, out_n=100, wall="thom", extrapolate=False)
        err[n] = np.array([rel_l2(ref.values[k], data.values[k]) for k in ("u", "v")])
    # Measured rel L2 (u, v): n = 20: 2.41e-2, 5.72e-2; n = 40: 6.66e-3, 1.53e-2, ratios 3.6
    # and 3.7 (second order: 4; Jensen at n = 40: 6.2e-3, 1.4e-2). The mutant: 0.46, 0.54
    # at n = 40, ratio ~1.
    assert np.all(err[40] < [7.5e-3, 1.7e-2])
    assert np.all((3.2 < err[20] / err[40]) & (err[20] / err[40] < 4.5))


@pytest.mark.slow
def test_cavity_second_order_convergence(cavity_ref):
    """Grid refinement 100 -> 200 -> 400: errors fall by ~4 per halving of h."""
    levels = {n: lid_driven_cavity(n=n, extrapolate=False) for n in (100, 200, 400)}
    best = {k: (4 * levels[400].values[k] - levels[200].values[k]) / 3 for k in ("u", "v")}
    e = {n: max(np.abs(r.values[k] - best[k]).max() for k in ("u", "v")) for n, r in levels.items()}
    assert 3.0 < e[100] / e[200] < 5.0  # measured 1.76e-3 / 4.63e-4 = 3.8
    ext = max(np.abs(cavity_ref.values[k] - best[k]).max() for k in ("u", "v"))
    assert ext < 6e-5  # the default (extrapolated 100/200) solution: measured 3.9e-5


def test_environment_override(monkeypatch, tmp_path):
    monkeypatch.setenv("KANPDE_SHARED_DATA", str(tmp_path))
    assert shared_data_dir() == tmp_path
    monkeypatch.setenv("KANPDE_SHARED_DATA", os.fspath(tmp_path / "missing"))
    assert shared_data_dir() is None
    with pytest.raises(FileNotFoundError):
        load_burgers_shock()


# ------------------------------------------------------------------ review fixes (reference)


def test_cached_entry_with_non_finite_values_is_recomputed(monkeypatch, tmp_path):
    # HDF5 keeps no checksum: a damaged entry read back well-formed, NaN and all.
    monkeypatch.setenv("KANPDE_CACHE", str(tmp_path))
    compute, calls = _counting()
    cached("toy", compute, n=2)
    with h5py.File(cache_path("toy", n=2), "r+") as f:
        f["values/0"][0, 0] = np.nan
    with pytest.warns(RuntimeWarning, match="non-finite values in a"):
        ref = cached("toy", compute, n=2)
    assert len(calls) == 2 and np.isfinite(ref.values["a"]).all()


def test_interpolate_takes_points_a_rounding_error_outside_the_grid():
    ref = _toy()
    (x0, x1), (y0, y1) = (ref.axes[0][[0, -1]], ref.axes[1][[0, -1]])
    edge = np.array([[x0, y0], [x1, y1]])
    nudged = np.array([[x0 - 1e-15, np.nextafter(y0, -np.inf)], [x1 + 2e-16, y1 + 1e-15]])
    np.testing.assert_array_equal(ref.interpolate(nudged), ref.interpolate(edge))
    with pytest.raises(ValueError):
        ref.interpolate(np.array([[x1 + 1e-9, y1]]))  # beyond rounding: still outside


def test_reference_with_non_finite_values_is_not_cached(monkeypatch, tmp_path):
    # It was written, then refused at every read: recomputed with a warning on every call.
    monkeypatch.setenv("KANPDE_CACHE", str(tmp_path))
    compute, calls = _counting(_toy_with_nan)
    for _ in range(2):
        with pytest.warns(RuntimeWarning, match="not caching toy: non-finite values in a"):
            cached("toy", compute, n=3)
    assert len(calls) == 2 and not cache_path("toy", n=3).exists()


# ----------------------------------------------------------------------------- bad arguments
# Each was accepted silently or failed with a message that did not name the argument.


def _raises_exactly(message: str, exc: type[Exception] = ValueError):
    return pytest.raises(exc, match="^" + re.escape(message) + "$")


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        # a NaN t returned the initial condition -sin(pi x), silently
        (dict(x=0.5, t=NAN), "t must be finite and >= 0, got nan"),
        (dict(x=0.5, t=[0.1, INF]), "t must be finite and >= 0, got inf"),
        (dict(x=0.5, t=-0.5), "t must be finite and >= 0, got -0.5"),
        (dict(x=[0.0, NAN], t=0.5), "x must be finite, got nan"),
        (dict(x=0.5, t=0.5, nu=NAN), "nu must be a finite number > 0, got nan"),
        (dict(x=0.5, t=0.5, nu=INF), "nu must be a finite number > 0, got inf"),
        (dict(x=0.5, t=0.5, nu=0.0), "nu must be a finite number > 0, got 0.0"),
        (dict(x=0.5, t=0.5, tol=NAN), "tol must be a finite number >= 0, got nan"),
        (dict(x=0.5, t=0.5, n_quad=0), "n_quad must be an integer >= 1, got 0"),
        # max_quad = nan never stopped the doubling
        (dict(x=0.5, t=0.5, max_quad=NAN), "max_quad must be an integer >= 128, got nan"),
    ],
)
def test_burgers_exact_names_bad_arguments(kwargs, message):
    with _raises_exactly("burgers_exact: " + message):
        burgers_exact(**kwargs)


def test_burgers_quadrature_failure_names_nu_and_time():
    # A late time, not the viscosity, is what fails here (t = 30 converges by 4096).
    message = (
        "burgers_exact: Gauss-Hermite quadrature did not reach tol=1e-13 by order 256 at "
        "nu=0.0031831, t up to 100: too small a viscosity or too late a time for this method"
    )
    with _raises_exactly(message, RuntimeError):
        burgers_exact(0.5, np.array([0.0, 0.5, 100.0]), max_quad=256)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(nu=NAN), "nu must be a finite number > 0, got nan"),
        (dict(nx=5.0), "nx must be an integer >= 1, got 5.0"),
        (dict(nt=0), "nt must be an integer >= 1, got 0"),
        (
            dict(t_range=(-1.0, 1.0)),
            "t_range must be finite (lo, hi) with 0 <= lo < hi, got (-1.0, 1.0)",
        ),
        (
            dict(x_range=(1.0, -1.0)),
            "x_range must be finite (lo, hi) with lo < hi, got (1.0, -1.0)",
        ),
        (
            dict(x_range=(-INF, 1.0)),
            "x_range must be finite (lo, hi) with lo < hi, got (-inf, 1.0)",
        ),
    ],
)
def test_burgers_names_bad_arguments(kwargs, message):
    with _raises_exactly("burgers: " + message):
        burgers(**kwargs)


def test_burgers_single_time_on_a_degenerate_range_still_runs():
    ref = burgers(nx=5, nt=1, t_range=(0.0, 0.0))
    np.testing.assert_allclose(ref.values["u"][:, 0], -np.sin(np.pi * ref.axes[0]), atol=1e-15)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(dt=0.0), "dt must be a finite number > 0, got 0.0"),  # was OverflowError
        (dict(dt=NAN), "dt must be a finite number > 0, got nan"),
        (dict(dt=-1.0), "dt must be a finite number > 0, got -1.0"),  # ran silently
        (dict(t_end=NAN), "t_end must be a finite number > 0, got nan"),
        (dict(t_end=-1.0), "t_end must be a finite number > 0, got -1.0"),  # "reduce dt"
        (dict(t_end=0.0), "t_end must be a finite number > 0, got 0.0"),
        (dict(t_end=-1.0, nt=1), "t_end must be a finite number >= 0, got -1.0"),
        (dict(eps=NAN), "eps must be a finite number >= 0, got nan"),  # was LinAlgError
        (dict(eps=-1e-3), "eps must be a finite number >= 0, got -0.001"),  # ran silently
        (dict(k=NAN), "k must be a finite number, got nan"),
        (dict(k=INF), "k must be a finite number, got inf"),
        (dict(n_cheb=6.0), "n_cheb must be an even integer >= 4, got 6.0"),
        (dict(n_cheb=5), "n_cheb must be an even integer >= 4, got 5"),
        (dict(nx=0), "nx must be an integer >= 1, got 0"),
        (dict(nt=0), "nt must be an integer >= 1, got 0"),
        (dict(contour_points=0), "contour_points must be an integer >= 1, got 0"),
    ],
)
def test_allen_cahn_names_bad_arguments(kwargs, message):
    with _raises_exactly("allen_cahn: " + message):
        allen_cahn(**kwargs)


def test_allen_cahn_edge_arguments_still_run():
    # nt = 1 is the initial condition alone, whatever t_end; a negative k is a valid
    # reaction rate (u = 0 attracts instead of u = +-1) and stays bounded.
    ref = allen_cahn(nx=5, nt=1, t_end=0.0, n_cheb=16)
    assert ref.axes[1].tolist() == [0.0]
    x = ref.axes[0]  # degree-16 interpolant of the initial condition: measured 4.2e-11
    np.testing.assert_allclose(ref.values["u"][:, 0], x**2 * np.cos(np.pi * x), atol=1e-10)
    ref = allen_cahn(nx=5, nt=3, k=-5.0, n_cheb=16, dt=1e-2)
    assert np.all(np.abs(ref.values["u"]) <= 1.0 + 1e-12)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(re=0.0), "re must be a finite number > 0, got 0.0"),  # was ZeroDivisionError
        (dict(re=NAN), "re must be a finite number > 0, got nan"),
        (dict(re=INF), "re must be a finite number > 0, got inf"),
        (dict(re=-10.0), "re must be a finite number > 0, got -10.0"),  # ran silently
        (dict(ratio=NAN), "ratio must be a finite number > 0, got nan"),  # "exactly singular"
        (dict(tol=NAN), "tol must be a finite number > 0, got nan"),
        (dict(wall="x"), "wall must be 'jensen' or 'thom', got 'x'"),
        # scipy's "requires at least 4 points per dimension" on the coarse level
        (dict(n=4), "n must be a multiple of 4 >= 8 with extrapolate=True, got 4"),
        (dict(n=42), "n must be a multiple of 4 >= 8 with extrapolate=True, got 42"),
        (dict(n=2, extrapolate=False), "n must be an even integer >= 4, got 2"),
        (dict(out_n=3), "out_n must be an even integer >= 2, got 3"),
        (dict(lid=3), "lid must be a callable U(x) or None, got 3"),
        (
            dict(lid=lambda x: 1.0, n=8, out_n=4),
            "lid(x) must return finite values of shape (5,), got shape ()",
        ),
    ],
)
def test_cavity_names_bad_arguments(kwargs, message):
    with _raises_exactly("lid_driven_cavity: " + message):
        lid_driven_cavity(**kwargs)


def test_cavity_helpers_name_bad_arguments():
    g = graded_grid(4)
    with _raises_exactly("solve_streamfunction: re must be a finite number > 0, got 0"):
        solve_streamfunction(g, g, re=0)
    with _raises_exactly(
        "solve_streamfunction: x must be a 1-D grid of >= 4 points, got shape (3,)"
    ):
        solve_streamfunction(graded_grid(2), g)
    with _raises_exactly("solve_streamfunction: y must be finite and strictly increasing"):
        solve_streamfunction(g, g[::-1])
    with _raises_exactly("graded_grid: ratio must be a finite number > 0, got nan"):
        graded_grid(4, NAN)
    with _raises_exactly("graded_grid: n must be an even integer >= 2, got 3"):
        graded_grid(3)
    with _raises_exactly("graded_grid: base must be an even integer >= 4, got 2"):
        graded_grid(4, base=2)


def test_get_passes_argument_errors_through_with_the_solver_name(monkeypatch, tmp_path):
    monkeypatch.setenv("KANPDE_CACHE", str(tmp_path))
    with _raises_exactly("burgers: nu must be a finite number > 0, got nan"):
        get("burgers", nu=NAN)
    with _raises_exactly("allen_cahn: dt must be a finite number > 0, got 0"):
        get("allen_cahn", dt=0)
    with _raises_exactly("lid_driven_cavity: re must be a finite number > 0, got -10"):
        get("lid_driven_cavity", re=-10)
    assert not list(tmp_path.glob("*.h5"))


def test_interpolate_names_the_axis_and_range_of_a_bad_point():
    ref = Reference(
        ("x", "t"), (np.linspace(-1.0, 1.0, 5), np.linspace(0.0, 0.99, 5)), {"u": np.zeros((5, 5))}
    )
    with _raises_exactly(
        "Reference.interpolate: t = 1.5 outside the reference's range [0.0, 0.99] (point 1 of 2)"
    ):
        ref.interpolate(np.array([[0.0, 0.5], [0.0, 1.5]]))
    with _raises_exactly(
        "Reference.interpolate: x = 1.000000001 outside the reference's range [-1.0, 1.0] "
        "(point 0 of 1)"
    ):
        ref.interpolate(np.array([[1.0 + 1e-9, 0.5]]))
    with _raises_exactly("Reference.interpolate: non-finite point x = nan, t = 0.5 (point 0 of 1)"):
        ref.interpolate(np.array([[NAN, 0.5]]))
    with _raises_exactly("Reference.interpolate: non-finite point x = 0.0, t = inf (point 1 of 2)"):
        ref.interpolate(np.array([[0.0, 0.0], [0.0, INF]]))


def test_get_names_the_solver_of_an_unknown_keyword():
    # Python's own "got an unexpected keyword argument" said neither the solver nor its options
    with pytest.raises(TypeError) as e:
        get("burgers", n_x=3)
    assert str(e.value) == (
        "get('burgers'): got an unexpected keyword argument 'n_x'; burgers takes nx, nt, nu, "
        "x_range, t_range, n_quad, tol"
    )

r"""Steady lid-driven cavity flow by streamfunction–vorticity finite differences.

Problem: steady incompressible Navier–Stokes on :math:`[0, 1]^2`, :math:`\nu = 1/Re`,
lid :math:`u = U(x)` (default :math:`4x(1-x)`), :math:`v = 0` on :math:`y = 1`, no slip on
the other walls.

Method
------
* Unknowns: streamfunction :math:`\psi` (:math:`u = \psi_y`, :math:`v = -\psi_x`) and
  vorticity :math:`\omega = v_x - u_y` at every node of a tensor grid, geometrically graded
  towards the walls (default: the grid of the PINNacle/COMSOL data, 100 intervals with a
  5:1 spacing ratio between the centre and the walls).
* Interior equations, second-order 3-point finite differences on the non-uniform grid:
  :math:`\nabla^2\psi + \omega = 0` and
  :math:`\nu\nabla^2\omega - \psi_y\omega_x + \psi_x\omega_y = 0`.
* Walls: :math:`\psi = 0`; wall vorticity :math:`\omega_w = -\psi_{nn}` from a cubic in the
  wall-normal distance through :math:`\psi_w`, the known normal derivative (the wall's
  tangential velocity) and the two nearest interior values (Jensen/Briley formula,
  generalised to unequal spacing; ``wall="thom"`` gives Thom's formula).
* The coupled system is solved by Newton's method with a sparse LU (SuperLU), so the
  result is the exact discrete steady state. The coarse solution seeds the fine one.
* Two nested grids (``n/2`` and ``n`` intervals) give a Richardson extrapolation
  :math:`(4 f_n - f_{n/2})/3` at the shared nodes (``extrapolate=True``).
* Pressure: least-squares fit of :math:`\nabla p` to the momentum balance
  :math:`\nabla p = -(\mathbf u\cdot\nabla)\mathbf u + \nu(-\omega_y, \omega_x)`, i.e. a
  pressure Poisson equation with the consistent Neumann condition, in finite-volume form.
  Convention: **zero mean over the cavity** (trapezoidal area average on the output grid).

Accuracy at Re = 100 on the 101 x 101 output grid: the max error of u, v against the
n = 200/400 extrapolation falls 1.8e-3, 4.6e-4, 1.2e-4 for n = 100, 200, 400 (second
order); the default (n = 100/200 extrapolated) is within 3.9e-5 of it. Against
``lid_driven_a4.dat`` (COMSOL) the relative L2 difference of u, v is 1.1e-3 / 2.4e-3
(n = 100), 3.7e-4 / 6.7e-4 (n = 200) and 2.0e-4 / 2.0e-4 (default), max 2.7e-4: the file's
own error, e.g. its lid velocity departs from 4x(1-x) by up to 2.7e-4. The pressure is
logarithmically singular at the two lid corners (the velocity gradient jumps there:
u_x = +-4 along the lid, 0 along the side walls), so nodal p at those corners depends on the
grid; elsewhere it agrees with the file to 1e-3 (relative L2, mean removed).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .core import Reference, _check_int, _check_number, _grid_interpolator, _shown

__all__ = [
    "SOLVER_VERSION",
    "graded_grid",
    "lid_driven_cavity",
    "solve_streamfunction",
    "velocity_from_streamfunction",
]

SOLVER_VERSION = "1"


def graded_grid(n: int, ratio: float = 5.0, base: int = 100) -> np.ndarray:
    """Symmetric grid on [0, 1], geometrically graded towards both ends.

    ``graded_grid(base, ratio)`` is COMSOL's "geometric sequence, symmetric" distribution:
    ``base`` intervals whose widths grow by a constant factor from each end to the centre,
    with (widest / narrowest) = ``ratio``. Other ``n`` sample the same smooth mapping, so
    ``graded_grid(2 * n)[::2] == graded_grid(n)`` (nested refinement).

    Parameters
    ----------
    n : int
        Number of intervals (even).
    ratio : float
        Centre-to-wall spacing ratio at ``n = base``; 1 gives a uniform grid.
    base : int
        Even interval count at which ``ratio`` is exact.

    Returns
    -------
    ndarray, shape (n + 1,)
    """
    _check_int("graded_grid", "n", n, 2, multiple=2)
    _check_int("graded_grid", "base", base, 4, multiple=2)
    _check_number("graded_grid", "ratio", ratio, above=0)
    if ratio == 1.0:
        return np.linspace(0.0, 1.0, n + 1)
    half = base // 2
    log_q = np.log(ratio) * half / (half - 1)  # spacing growth over a half, continuous
    xi = np.arange(n // 2 + 1) / (n // 2)
    left = 0.5 * np.expm1(xi * log_q) / np.expm1(log_q)
    return np.concatenate([left, 1.0 - left[-2::-1]])


def _diff_1d(x: np.ndarray) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """First and second derivative matrices (3-point, second order) on a non-uniform grid.

    First derivative: central inside, one-sided at the ends. Second derivative: interior
    rows only (end rows are zero).
    """
    n = len(x)
    hm, hp = np.diff(x)[:-1], np.diff(x)[1:]
    rows = np.repeat(np.arange(1, n - 1), 3)
    cols = (np.arange(1, n - 1)[:, None] + np.array([-1, 0, 1])).ravel()
    c1 = np.stack([-hp / (hm * (hm + hp)), (hp - hm) / (hm * hp), hm / (hp * (hm + hp))], 1)
    c2 = np.stack([2 / (hm * (hm + hp)), -2 / (hm * hp), 2 / (hp * (hm + hp))], 1)

    def one_sided(x0: float, x1: float, x2: float) -> list[float]:
        a, b = x1 - x0, x2 - x0
        return [-(a + b) / (a * b), b / (a * (b - a)), -a / (b * (b - a))]

    r1 = np.r_[rows, 0, 0, 0, n - 1, n - 1, n - 1]
    k1 = np.r_[cols, 0, 1, 2, n - 1, n - 2, n - 3]
    v1 = np.r_[c1.ravel(), one_sided(x[0], x[1], x[2]), one_sided(x[-1], x[-2], x[-3])]
    d1 = sp.csr_matrix((v1, (r1, k1)), shape=(n, n))
    d2 = sp.csr_matrix((c2.ravel(), (rows, cols)), shape=(n, n))
    return d1, d2


def _wall_coefficients(s1: float, s2: float, wall: str) -> tuple[float, float, float]:
    """``psi_nn = a1 psi(s1) + a2 psi(s2) + a_s psi_n`` at a wall where ``psi = 0``."""
    if wall == "thom":
        return 2.0 / s1**2, 0.0, -2.0 / s1
    if wall == "jensen":
        den = s1**2 * s2**2 * (s2 - s1)
        return 2 * s2**3 / den, -2 * s1**3 / den, -2 * s1 * s2 * (s2**2 - s1**2) / den
    raise ValueError(f"unknown wall formula {wall!r}; use 'jensen' or 'thom'")


class _Operators:
    """Sparse operators of the streamfunction–vorticity system on one grid."""

    def __init__(self, x: np.ndarray, y: np.ndarray, lid_u: np.ndarray, wall: str):
        nx, ny = len(x), len(y)
        m = nx * ny
        self.shape, self.m = (nx, ny), m
        d1x, d2x = _diff_1d(x)
        d1y, d2y = _diff_1d(y)
        ix, iy = sp.identity(nx, format="csr"), sp.identity(ny, format="csr")
        self.dx = sp.kron(d1x, iy, format="csr")
        self.dy = sp.kron(ix, d1y, format="csr")
        lap = (sp.kron(d2x, iy) + sp.kron(ix, d2y)).tocsr()
        idx = np.arange(m).reshape(nx, ny)
        inner = np.zeros((nx, ny), bool)
        inner[1:-1, 1:-1] = True
        self.inner = inner.ravel()
        p_in = sp.diags(self.inner.astype(float))
        p_out = sp.diags((~self.inner).astype(float))
        self.p_in = p_in

        # Wall vorticity rows: omega_w + a1 psi_1 + a2 psi_2 + a_s psi_n = 0.
        rows, cols, vals = [], [], []
        self.const = np.zeros(m)
        walls = [  # (wall nodes, first and second interior neighbours, wall distances)
            (idx[1:-1, 0], idx[1:-1, 1], idx[1:-1, 2], y[1] - y[0], y[2] - y[0]),
            (idx[1:-1, -1], idx[1:-1, -2], idx[1:-1, -3], y[-1] - y[-2], y[-1] - y[-3]),
            (idx[0, 1:-1], idx[1, 1:-1], idx[2, 1:-1], x[1] - x[0], x[2] - x[0]),
            (idx[-1, 1:-1], idx[-2, 1:-1], idx[-3, 1:-1], x[-1] - x[-2], x[-1] - x[-3]),
        ]
        for k, (w0, w1, w2, s1, s2) in enumerate(walls):
            a1, a2, a_s = _wall_coefficients(s1, s2, wall)
            rows += [w0, w0]
            cols += [w1, w2]
            vals += [np.full(len(w0), a1), np.full(len(w0), a2)]
            if k == 1:  # lid: inward normal is -y, so psi_n = -psi_y = -U(x)
                self.const[w0] = a_s * (-lid_u[1:-1])
        self.wall = sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(m, m)
        )
        # Corners belong to two walls; their vorticity (not used by the interior stencils)
        # is the mean of the two neighbouring wall values.
        corners = [idx[0, 0], idx[0, -1], idx[-1, 0], idx[-1, -1]]
        nbrs = [
            (idx[1, 0], idx[0, 1]),
            (idx[1, -1], idx[0, -2]),
            (idx[-2, 0], idx[-1, 1]),
            (idx[-2, -1], idx[-1, -2]),
        ]
        corner = sp.csr_matrix(
            (np.full(8, -0.5), (np.repeat(corners, 2), np.ravel(nbrs))), shape=(m, m)
        )
        self.a_pp = (p_in @ lap + p_out).tocsr()  # psi rows: Poisson inside, psi = 0 on walls
        self.a_po = p_in.tocsr()
        self.lap = lap
        self.a_oo_out = (p_out + corner).tocsr()  # omega rows on the boundary (linear)

    def residual(self, z: np.ndarray, nu: float) -> np.ndarray:
        m = self.m
        psi, om = z[:m], z[m:]
        adv = -(self.dy @ psi) * (self.dx @ om) + (self.dx @ psi) * (self.dy @ om)
        f_psi = self.a_pp @ psi + self.a_po @ om
        f_om = (
            self.a_oo_out @ om
            + self.wall @ psi
            + self.const
            + self.inner * (nu * (self.lap @ om) + adv)
        )
        return np.concatenate([f_psi, f_om])

    def jacobian(self, z: np.ndarray, nu: float) -> sp.csc_matrix:
        m = self.m
        psi, om = z[:m], z[m:]
        d = sp.diags
        j_op = self.p_in @ (d(self.dy @ om) @ self.dx - d(self.dx @ om) @ self.dy) + self.wall
        j_oo = self.a_oo_out + self.p_in @ (
            nu * self.lap - d(self.dy @ psi) @ self.dx + d(self.dx @ psi) @ self.dy
        )
        return sp.bmat([[self.a_pp, self.a_po], [j_op, j_oo]], format="csc")


def _newton(
    ops: _Operators, nu: float, z: np.ndarray, tol: float, max_iter: int = 40
) -> tuple[np.ndarray, dict]:
    """Newton's method; the LU is reused while the steps shrink fast."""
    m = ops.m
    lu, prev_step, step, factorizations = None, np.inf, np.inf, 0
    for it in range(1, max_iter + 1):
        if lu is None:
            lu = spla.splu(ops.jacobian(z, nu))
            factorizations += 1
        dz = lu.solve(ops.residual(z, nu))
        if not np.all(np.isfinite(dz)):
            break
        z = z - dz
        step = max(
            np.abs(dz[:m]).max() / max(np.abs(z[:m]).max(), 1e-300),
            np.abs(dz[m:]).max() / max(np.abs(z[m:]).max(), 1e-300),
        )
        if step <= tol:
            return z, {"iterations": it, "factorizations": factorizations, "step": float(step)}
        if step > 0.1 * prev_step:  # slow contraction: refresh the Jacobian
            lu = None
        if step > 1e3 * min(prev_step, 1.0):
            break
        prev_step = step
    raise RuntimeError(f"Newton did not converge (last relative step {step:.2e})")


def solve_streamfunction(
    x: np.ndarray,
    y: np.ndarray,
    re: float = 100.0,
    lid: Callable[[np.ndarray], np.ndarray] | None = None,
    wall: str = "jensen",
    tol: float = 1e-11,
    init: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Steady streamfunction and vorticity on a given tensor grid.

    Parameters
    ----------
    x, y : ndarray, shapes (nx,), (ny,)
        Increasing grid coordinates from 0 to 1.
    re : float
        Reynolds number (``nu = 1 / re``).
    lid : callable, optional
        Lid velocity ``U(x)``; default ``4 x (1 - x)``.
    wall : {"jensen", "thom"}
        Wall-vorticity formula.
    tol : float
        Newton stops when the relative max-norm update of psi and omega is below ``tol``.
    init : (psi, omega), optional
        Initial guess, arrays of shape (nx, ny); zero (Stokes first step) by default.

    Returns
    -------
    psi, omega : ndarray, shape (nx, ny)
    info : dict
        Newton statistics and the Reynolds numbers of any continuation steps.
    """
    where = "solve_streamfunction"
    for name, a in (("x", x), ("y", y)):
        a = np.asarray(a, dtype=float)
        # each wall's vorticity formula reads the two nearest interior nodes
        if a.ndim != 1 or len(a) < 4:
            raise ValueError(
                f"{where}: {name} must be a 1-D grid of >= 4 points, got shape {a.shape}"
            )
        if not (np.all(np.isfinite(a)) and np.all(np.diff(a) > 0)):
            raise ValueError(f"{where}: {name} must be finite and strictly increasing")
    _check_re_wall_tol(where, re, wall, tol)
    lid = _default_lid if lid is None else lid
    nu_target = 1.0 / re
    ops = _Operators(x, y, _lid_values(where, lid, x), wall)
    z0 = np.zeros(2 * ops.m) if init is None else np.concatenate([a.ravel() for a in init])
    try:
        z, info = _newton(ops, nu_target, z0, tol)
        info["continuation"] = []
    except RuntimeError:
        # Natural-parameter continuation in Re from a safely convergent value.
        res = list(
            np.geomspace(
                min(re, 100.0), re, max(2, int(np.ceil(np.log(re / 100) / np.log(1.5))) + 1)
            )
        )
        z = np.zeros(2 * ops.m)
        for r in res:
            z, info = _newton(ops, 1.0 / r, z, tol)
        info["continuation"] = [float(r) for r in res]
    return z[: ops.m].reshape(ops.shape), z[ops.m :].reshape(ops.shape), info


def _default_lid(x: np.ndarray) -> np.ndarray:
    return 4.0 * x * (1.0 - x)


def _check_re_wall_tol(where: str, re: float, wall: str, tol: float) -> None:
    # re <= 0 is a zero or negative viscosity; a non-finite one broke the continuation
    # schedule with an int conversion error.
    _check_number(where, "re", re, above=0)
    if wall not in ("jensen", "thom"):
        raise ValueError(f"{where}: wall must be 'jensen' or 'thom', got {wall!r}")
    _check_number(where, "tol", tol, above=0)


def _lid_values(where: str, lid: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """``lid(x)`` as a float array, refused unless finite and of the grid's shape."""
    u = np.asarray(lid(x), dtype=float)
    if u.shape != np.shape(x) or not np.all(np.isfinite(u)):
        raise ValueError(
            f"{where}: lid(x) must return finite values of shape {np.shape(x)}, got "
            + (f"shape {u.shape}" if u.shape != np.shape(x) else "non-finite values")
        )
    return u


def velocity_from_streamfunction(
    x: np.ndarray, y: np.ndarray, psi: np.ndarray, lid_u: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Velocity ``u = psi_y``, ``v = -psi_x`` with the solver's difference operators.

    Parameters
    ----------
    x, y : ndarray, shapes (nx,), (ny,)
    psi : ndarray, shape (nx, ny)
    lid_u : ndarray, shape (nx,)
        Lid velocity at ``x``; wall values are set from the boundary conditions.

    Returns
    -------
    u, v : ndarray, shape (nx, ny)
    """
    d1x, _ = _diff_1d(x)
    d1y, _ = _diff_1d(y)
    u = np.asarray(psi @ d1y.T)  # d/dy along axis 1
    v = -np.asarray(d1x @ psi)
    u[0, :] = u[-1, :] = 0.0
    u[:, 0] = 0.0
    u[:, -1] = lid_u
    v[0, :] = v[-1, :] = 0.0
    v[:, 0] = v[:, -1] = 0.0
    return u, v


def _pressure(x, y, u, v, om, nu):
    """Least-squares pressure from the steady momentum balance, zero area mean."""
    nx, ny = len(x), len(y)
    d1x, _ = _diff_1d(x)
    d1y, _ = _diff_1d(y)
    ddx = lambda f: np.asarray(d1x @ f)
    ddy = lambda f: np.asarray(f @ d1y.T)
    fx = -(u * ddx(u) + v * ddy(u)) - nu * ddy(om)
    fy = -(u * ddx(v) + v * ddy(v)) + nu * ddx(om)
    hx, hy = np.diff(x), np.diff(y)
    wx = np.r_[hx[0], hx[:-1] + hx[1:], hx[-1]] / 2  # dual cell widths
    wy = np.r_[hy[0], hy[:-1] + hy[1:], hy[-1]] / 2
    idx = np.arange(nx * ny).reshape(nx, ny)
    # x-edges: p[i+1, j] - p[i, j] = hx_i * mean(fx) (trapezoid), weight wy_j / hx_i
    ex_a, ex_b = idx[:-1, :].ravel(), idx[1:, :].ravel()
    rx = (hx[:, None] * 0.5 * (fx[:-1, :] + fx[1:, :])).ravel()
    gx = (np.broadcast_to(wy[None, :], (nx - 1, ny)) / hx[:, None]).ravel()
    ey_a, ey_b = idx[:, :-1].ravel(), idx[:, 1:].ravel()
    ry = (hy[None, :] * 0.5 * (fy[:, :-1] + fy[:, 1:])).ravel()
    gy = (wx[:, None] / np.broadcast_to(hy[None, :], (nx, ny - 1))).ravel()
    a, b = np.r_[ex_a, ey_a], np.r_[ex_b, ey_b]
    r, g = np.r_[rx, ry], np.r_[gx, gy]
    ne = len(a)
    grad = sp.csr_matrix(
        (np.r_[-np.ones(ne), np.ones(ne)], (np.r_[np.arange(ne), np.arange(ne)], np.r_[a, b])),
        shape=(ne, nx * ny),
    )
    normal = (grad.T @ sp.diags(g) @ grad).tocsc()
    rhs = grad.T @ (g * r)
    # The Neumann problem fixes p up to a constant: pin node 0, then remove the mean.
    p = np.zeros(nx * ny)
    p[1:] = spla.spsolve(normal[1:, 1:], rhs[1:])
    p = p.reshape(nx, ny)
    area = wx[:, None] * wy[None, :]
    return p - (p * area).sum() / area.sum()


def _resample(f: np.ndarray, grid: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Values on ``out x out``: exact slicing when nested, else cubic interpolation."""
    pos = np.searchsorted(grid, out)
    pos = np.clip(pos, 0, len(grid) - 1)
    near = np.where(np.abs(grid[pos] - out) <= 1e-12, pos, -1)
    if np.all(near >= 0):
        return f[np.ix_(near, near)]
    interp = _grid_interpolator((grid, grid), f, "cubic")
    mesh = np.stack(np.meshgrid(out, out, indexing="ij"), axis=-1)
    return interp(mesh.reshape(-1, 2)).reshape(len(out), len(out))


def lid_driven_cavity(
    re: float = 100.0,
    lid: Callable[[np.ndarray], np.ndarray] | None = None,
    n: int = 200,
    ratio: float = 5.0,
    out_n: int = 100,
    extrapolate: bool = True,
    wall: str = "jensen",
    tol: float = 1e-11,
) -> Reference:
    """Steady lid-driven cavity reference solution.

    Parameters
    ----------
    re : float
        Reynolds number, ``nu = 1 / re``.
    lid : callable, optional
        Lid velocity ``U(x)`` on ``y = 1`` (vectorised); default ``4 x (1 - x)``, which
        vanishes at the corners and so avoids the velocity jump of ``U = 1`` (the two top
        corner nodes carry the lid value).
    n : int
        Intervals per direction of the finest solver grid (even; with ``extrapolate`` a
        multiple of 4).
    ratio, out_n : float, int
        Grids are ``graded_grid(., ratio, base=100)``; the output grid has ``out_n``
        intervals (defaults: the 101 x 101 grid of ``lid_driven_a4.dat``).
    extrapolate : bool
        Also solve on ``n / 2`` intervals and return the Richardson extrapolation.
    wall : {"jensen", "thom"}
        Wall-vorticity formula.
    tol : float
        Newton tolerance (relative update).

    Returns
    -------
    Reference
        ``names=("x", "y")``, ``values`` ``"u"``, ``"v"``, ``"p"``, each of shape
        ``(out_n + 1, out_n + 1)``; ``p`` has zero area mean. ``meta["grid_change"]`` is
        the max difference of u, v between the two grids (an error estimate of the
        unextrapolated coarse solution).
    """
    where = "lid_driven_cavity"
    _check_re_wall_tol(where, re, wall, tol)
    if extrapolate:  # the coarse level n/2 must itself be an even n >= 4
        _check_int(where, "n", n, 8, multiple=4, what=" with extrapolate=True")
    else:  # each wall's vorticity formula reads two interior nodes, not the far wall
        _check_int(where, "n", n, 4, multiple=2)
    _check_int(where, "out_n", out_n, 2, multiple=2)
    _check_number(where, "ratio", ratio, above=0)
    if lid is not None and not callable(lid):
        raise ValueError(f"{where}: lid must be a callable U(x) or None, got {_shown(lid)}")
    t0 = time.perf_counter()
    lid = _default_lid if lid is None else lid
    nu = 1.0 / re
    out = graded_grid(out_n, ratio)
    lid_out = _lid_values(where, lid, out)  # before any solve: a bad lid fails fast
    levels = [n // 2, n] if extrapolate else [n]
    fields, infos, prev = [], [], None
    for level in levels:
        g = graded_grid(level, ratio)
        init = None
        if prev is not None:
            pg, ppsi, pom = prev
            mesh = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
            init = tuple(
                _grid_interpolator((pg, pg), f, "cubic")(mesh).reshape(len(g), len(g))
                for f in (ppsi, pom)
            )
        psi, om, info = solve_streamfunction(g, g, re, lid, wall, tol, init)
        prev = (g, psi, om)
        u, v = velocity_from_streamfunction(g, g, psi, np.asarray(lid(g), dtype=float))
        p = _pressure(g, g, u, v, om, nu)
        fields.append({k: _resample(f, g, out) for k, f in (("u", u), ("v", v), ("p", p))})
        infos.append({"n": level, **info})
    fine = fields[-1]
    if extrapolate:
        coarse = fields[0]
        values = {k: (4.0 * fine[k] - coarse[k]) / 3.0 for k in ("u", "v", "p")}
        change = float(max(np.abs(fine[k] - coarse[k]).max() for k in ("u", "v")))
    else:
        values = {k: fine[k] for k in ("u", "v", "p")}
        change = None
    # Boundary values exactly (extrapolation of exact values is exact, up to rounding).
    for f in (values["u"], values["v"]):
        f[0, :] = f[-1, :] = f[:, 0] = 0.0
    values["u"][:, -1] = lid_out
    values["v"][:, -1] = 0.0
    wx = np.r_[np.diff(out)[0], np.diff(out)[:-1] + np.diff(out)[1:], np.diff(out)[-1]] / 2
    area = wx[:, None] * wx[None, :]
    values["p"] = values["p"] - (values["p"] * area).sum() / area.sum()
    meta = {
        "problem": "lid_driven_cavity",
        "solver": "streamfunction-vorticity, 2nd-order FD on a graded grid, Newton + SuperLU"
        + (", Richardson-extrapolated" if extrapolate else ""),
        "solver_version": SOLVER_VERSION,
        "re": re,
        "levels": infos,
        "ratio": ratio,
        "wall": wall,
        "grid_change": change,
        "pressure": "zero area mean",
        "wall_time_s": time.perf_counter() - t0,
    }
    return Reference(("x", "y"), (out, out), values, meta)

r"""Viscous Burgers equation with a sine initial condition, exact via Cole–Hopf.

Problem: :math:`u_t + u u_x = \nu u_{xx}`, :math:`u(x, 0) = -\sin(\pi x)`,
:math:`u(\pm 1, t) = 0`.

The Cole–Hopf substitution :math:`u = -2\nu\,\varphi_x/\varphi` turns the equation into the
heat equation, whose whole-line solution is a Gaussian convolution. Integrating by parts
(Basdevant et al., Comput. Fluids 14, 1986) gives, with :math:`c = 2\sqrt{\nu t}` and the
similarity variable :math:`z`,

.. math::

    u(x, t) = -\frac{\int \sin(\pi(x - cz))\, f(x - cz)\, e^{-z^2}\,dz}
                    {\int f(x - cz)\, e^{-z^2}\,dz},
    \qquad f(y) = \exp\!\Big(-\frac{\cos \pi y}{2\pi\nu}\Big),

evaluated here by Gauss–Hermite quadrature. The initial condition is odd about every
integer, so the whole-line solution vanishes at :math:`x = \pm 1` and also solves the
boundary-value problem. :math:`f` spans :math:`e^{\pm 1/(2\pi\nu)}`, so the sums are taken
in log space with the largest exponent factored out (no overflow for any :math:`\nu`).
The quadrature order is doubled until two successive orders agree to ``tol``.
"""

from __future__ import annotations

import time

import numpy as np
from scipy.special import roots_hermite

from .core import Reference, _check_int, _check_number, _shown

__all__ = ["SOLVER_VERSION", "burgers", "burgers_exact", "hermite_rule"]

SOLVER_VERSION = "1"

_CHUNK = 1 << 22  # quadrature terms evaluated at once (memory bound, ~32 MB per array)


def hermite_rule(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Hermite nodes and log-weights for the weight :math:`e^{-z^2}`.

    Parameters
    ----------
    n : int
        Number of nodes.

    Returns
    -------
    z : ndarray, shape (n,)
        Nodes.
    log_w : ndarray, shape (n,)
        Natural logarithms of the weights; finite even where the weights themselves would
        underflow (outer nodes of large rules).

    Notes
    -----
    Uses :math:`w_k = 1 / \\sum_{j<n} p_j(z_k)^2` with orthonormal Hermite polynomials
    :math:`p_j`, run with per-node rescaling so that nothing overflows.
    """
    z, _ = roots_hermite(n)
    p_prev = np.zeros_like(z)
    p = np.full_like(z, np.pi**-0.25)
    total = p * p
    log_scale = np.zeros_like(z)  # log of the factor divided out of p, per node
    for k in range(n - 1):
        p_next = np.sqrt(2.0 / (k + 1)) * z * p - np.sqrt(k / (k + 1.0)) * p_prev
        p_prev, p = p, p_next
        total += p * p
        big = np.abs(p) > 1e100
        if np.any(big):
            s = np.where(big, np.abs(p), 1.0)
            p, p_prev, total = p / s, p_prev / s, total / (s * s)
            log_scale += 2.0 * np.log(s)
    return z, -(np.log(total) + log_scale)


def _cole_hopf(
    x: np.ndarray, t: np.ndarray, nu: float, z: np.ndarray, log_w: np.ndarray
) -> np.ndarray:
    """Quadrature of the Cole–Hopf ratio at flat arrays of points ``x``, ``t``."""
    out = np.empty(x.shape)
    step = max(1, _CHUNK // len(z))
    for s in range(0, x.size, step):
        xs, ts = x[s : s + step, None], t[s : s + step, None]
        y = xs - 2.0 * np.sqrt(nu * ts) * z
        expo = log_w - np.cos(np.pi * y) / (2.0 * np.pi * nu)
        weights = np.exp(expo - expo.max(axis=1, keepdims=True))
        out[s : s + step] = -(np.sin(np.pi * y) * weights).sum(axis=1) / weights.sum(axis=1)
    return out


def burgers_exact(
    x: np.ndarray,
    t: np.ndarray,
    nu: float = 0.01 / np.pi,
    n_quad: int | None = None,
    tol: float = 1e-13,
    max_quad: int = 4096,
) -> tuple[np.ndarray, dict]:
    """Cole–Hopf solution at arbitrary points.

    Parameters
    ----------
    x, t : array_like
        Broadcastable coordinates, ``t >= 0``.
    nu : float
        Viscosity.
    n_quad : int, optional
        Fixed Gauss–Hermite order. By default the order starts at 64 and doubles until
        two successive results differ by at most ``tol`` everywhere.
    tol : float
        Absolute convergence tolerance of the adaptive order.
    max_quad : int
        Largest order tried; a :class:`RuntimeError` is raised if it does not converge.

    Returns
    -------
    u : ndarray
        Solution, shape ``np.broadcast(x, t).shape``.
    info : dict
        ``n_quad`` (order used) and ``quad_change`` (max change from the previous order;
        ``None`` for a fixed order).
    """
    _check_number("burgers_exact", "nu", nu, above=0)
    if n_quad is not None:
        _check_int("burgers_exact", "n_quad", n_quad, 1)
    else:  # the adaptive order starts at 64 and compares it with 128
        _check_int("burgers_exact", "max_quad", max_quad, 128)
    _check_number("burgers_exact", "tol", tol, at_least=0)
    xb, tb = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(t, np.float64))
    # NaN compares false with everything: unchecked, a NaN t took the t = 0 branch and
    # returned the initial condition, and a NaN x stalled the quadrature.
    bad_x = ~np.isfinite(xb)
    if np.any(bad_x):
        raise ValueError(f"burgers_exact: x must be finite, got {_shown(xb[bad_x][0])}")
    bad_t = ~(np.isfinite(tb) & (tb >= 0))
    if np.any(bad_t):
        raise ValueError(f"burgers_exact: t must be finite and >= 0, got {_shown(tb[bad_t][0])}")
    xf, tf = xb.ravel(), tb.ravel()
    u = -np.sin(np.pi * xf)  # exact at t = 0
    live = tf > 0
    info: dict = {"n_quad": n_quad, "quad_change": None}
    if np.any(live):
        xl, tl = xf[live], tf[live]
        if n_quad is not None:
            u[live] = _cole_hopf(xl, tl, nu, *hermite_rule(n_quad))
        else:
            n = 64
            prev = _cole_hopf(xl, tl, nu, *hermite_rule(n))
            while True:
                if 2 * n > max_quad:
                    # f's peaks narrow as nu shrinks, and c = 2 sqrt(nu t) spreads more of
                    # them under the Gaussian as t grows: either can exhaust max_quad.
                    raise RuntimeError(
                        f"burgers_exact: Gauss-Hermite quadrature did not reach tol={tol:g} "
                        f"by order {n} at nu={nu:g}, t up to {float(tl.max()):g}: too small "
                        "a viscosity or too late a time for this method"
                    )
                n *= 2
                cur = _cole_hopf(xl, tl, nu, *hermite_rule(n))
                change = float(np.max(np.abs(cur - prev)))
                prev = cur
                if change <= tol:
                    break
            u[live] = cur
            info = {"n_quad": n, "quad_change": change}
    # The solution is odd about every integer, hence exactly zero there (the quadrature
    # would leave ~1e-16 of rounding).
    u[xf == np.round(xf)] = 0.0
    return u.reshape(xb.shape), info


def burgers(
    nx: int = 256,
    nt: int = 100,
    nu: float = 0.01 / np.pi,
    x_range: tuple[float, float] = (-1.0, 1.0),
    t_range: tuple[float, float] = (0.0, 0.99),
    n_quad: int | None = None,
    tol: float = 1e-13,
) -> Reference:
    """Reference solution of viscous Burgers on a uniform grid.

    The defaults reproduce the grid of Raissi et al.'s ``burgers_shock.mat``
    (``x = linspace(-1, 1, 256)``, ``t = linspace(0, 0.99, 100)``), which this solution
    matches to 4.2e-11 (max abs), the file's own quadrature error.

    Parameters
    ----------
    nx, nt : int
        Grid points in x and t (end points included).
    nu : float
        Viscosity; the classic benchmark uses ``0.01 / pi``.
    x_range, t_range : tuple of float
        Closed intervals; ``t_range[0] >= 0``. Any x interval is valid (the formula is the
        whole-line solution, zero at every integer).
    n_quad : int, optional
        Fixed Gauss–Hermite order; adaptive by default (see :func:`burgers_exact`).
    tol : float
        Convergence tolerance of the adaptive quadrature.

    Returns
    -------
    Reference
        ``names=("x", "t")``, ``values={"u": (nx, nt)}``.
    """
    _check_int("burgers", "nx", nx, 1)
    _check_int("burgers", "nt", nt, 1)
    _check_number("burgers", "nu", nu, above=0)
    for name, rng, n, low in (("x_range", x_range, nx, -np.inf), ("t_range", t_range, nt, 0.0)):
        try:
            lo, hi = (float(v) for v in rng)
        except (TypeError, ValueError):
            lo = hi = np.nan
        # one grid point may sit on a degenerate interval (linspace gives just lo)
        ok = np.isfinite(lo) and np.isfinite(hi) and low <= lo
        if not (ok and (lo < hi or (n == 1 and lo == hi))):
            shown = f"({lo!r}, {hi!r})" if np.isfinite(lo) or np.isfinite(hi) else repr(rng)
            need = "0 <= lo < hi" if low == 0 else "lo < hi"
            raise ValueError(f"burgers: {name} must be finite (lo, hi) with {need}, got {shown}")
    t0 = time.perf_counter()
    x = np.linspace(x_range[0], x_range[1], nx)
    t = np.linspace(t_range[0], t_range[1], nt)
    u, info = burgers_exact(x[:, None], t[None, :], nu=nu, n_quad=n_quad, tol=tol)
    meta = {
        "problem": "burgers",
        "solver": "Cole-Hopf, Gauss-Hermite quadrature in the similarity variable",
        "solver_version": SOLVER_VERSION,
        "nu": nu,
        "nx": nx,
        "nt": nt,
        "x_range": tuple(x_range),
        "t_range": tuple(t_range),
        "initial_condition": "-sin(pi x)",
        **info,
        "wall_time_s": time.perf_counter() - t0,
    }
    return Reference(("x", "t"), (x, t), {"u": u}, meta)

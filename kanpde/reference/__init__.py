"""Reference solutions for benchmark PDEs, computed by kanpde's own numerical solvers.

Each solver returns a :class:`Reference` (a solution on a tensor grid); :func:`get` runs a
named solver through the on-disk cache (:func:`cached`).

=====================  =================================================================
``burgers``            viscous Burgers, exact (Cole–Hopf + Gauss–Hermite quadrature)
``allen_cahn``         Allen–Cahn, Chebyshev collocation + ETDRK4
``lid_driven_cavity``  steady Navier–Stokes cavity, streamfunction–vorticity FD + Newton
=====================  =================================================================
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from . import allen_cahn as _allen_cahn_mod
from . import burgers as _burgers_mod
from . import cavity as _cavity_mod
from .allen_cahn import allen_cahn
from .burgers import burgers, burgers_exact
from .cavity import graded_grid, lid_driven_cavity
from .core import CACHE_FORMAT, Reference, cache_dir, cache_path, cached
from .published import load_allen_cahn, load_burgers_shock, load_cavity, shared_data_dir

__all__ = [
    "CACHE_FORMAT",
    "SOLVERS",
    "Reference",
    "allen_cahn",
    "burgers",
    "burgers_exact",
    "cache_dir",
    "cache_path",
    "cached",
    "get",
    "graded_grid",
    "lid_driven_cavity",
    "load_allen_cahn",
    "load_burgers_shock",
    "load_cavity",
    "shared_data_dir",
]

#: name -> (solver, solver version) for :func:`get`.
SOLVERS: dict[str, tuple[Callable[..., Reference], str]] = {
    "burgers": (burgers, _burgers_mod.SOLVER_VERSION),
    "allen_cahn": (allen_cahn, _allen_cahn_mod.SOLVER_VERSION),
    "lid_driven_cavity": (lid_driven_cavity, _cavity_mod.SOLVER_VERSION),
}


def get(name: str, **params: Any) -> Reference:
    """Run a named reference solver through the cache.

    Parameters
    ----------
    name : str
        A key of :data:`SOLVERS`.
    **params
        Solver arguments. Defaults are filled in before hashing, so ``get("burgers")`` and
        ``get("burgers", nx=256)`` share one cache entry. They must be JSON-able (a custom
        cavity ``lid`` function cannot be cached; call the solver directly).

    Returns
    -------
    Reference
    """
    try:
        solver, version = SOLVERS[name]
    except KeyError:
        raise KeyError(f"unknown reference {name!r}; available: {sorted(SOLVERS)}") from None
    try:
        bound = inspect.signature(solver).bind(**params)
    except TypeError as e:  # "got an unexpected keyword argument 'n_x'": say whose
        accepted = ", ".join(inspect.signature(solver).parameters)
        raise TypeError(f"get({name!r}): {e}; {solver.__name__} takes {accepted}") from None
    bound.apply_defaults()
    full = dict(bound.arguments)
    return cached(name, lambda: solver(**full), solver_version=version, **full)

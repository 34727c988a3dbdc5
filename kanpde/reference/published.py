"""Loaders for the published benchmark data used to validate the reference solvers.

The files are not shipped with kanpde. They are looked up in ``$KANPDE_SHARED_DATA`` or,
failing that, in ``<repository root>/../shared/data`` (the layout of the project's CI).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .core import Reference

__all__ = ["load_allen_cahn", "load_burgers_shock", "load_cavity", "shared_data_dir"]


def shared_data_dir() -> Path | None:
    """Folder with the published data files, or ``None`` if it is not available."""
    env = os.environ.get("KANPDE_SHARED_DATA")
    path = (
        Path(env).expanduser()
        if env
        else (Path(__file__).resolve().parents[2].parent / "shared" / "data")
    )
    return path if path.is_dir() else None


def _file(name: str, path: str | os.PathLike | None) -> Path:
    if path is not None:
        return Path(path)
    folder = shared_data_dir()
    if folder is None:
        raise FileNotFoundError(
            f"published data folder not found; set KANPDE_SHARED_DATA to the folder holding {name}"
        )
    return folder / name


def load_burgers_shock(path: str | os.PathLike | None = None) -> Reference:
    """Raissi et al.'s ``burgers_shock.mat`` as a Reference.

    Parameters
    ----------
    path : str or path-like, optional
        The file; default ``burgers_shock.mat`` in :func:`shared_data_dir`.

    Returns
    -------
    Reference
        ``names=("x", "t")``, axes of length 256 and 100, ``values={"u": (256, 100)}``.

    Raises
    ------
    FileNotFoundError
        If the file is missing, or no ``path`` is given and the data folder is not found.
    """
    from scipy.io import loadmat

    f = _file("burgers_shock.mat", path)
    d = loadmat(f)
    return Reference(
        ("x", "t"), (d["x"].ravel(), d["t"].ravel()), {"u": d["usol"]}, {"source": str(f)}
    )


def load_allen_cahn(path: str | os.PathLike | None = None) -> Reference:
    """DeepXDE's ``Allen_Cahn.mat`` as a Reference (transposed to ``u[x_i, t_j]``).

    Parameters
    ----------
    path : str or path-like, optional
        The file; default ``Allen_Cahn.mat`` in :func:`shared_data_dir`.

    Returns
    -------
    Reference
        ``names=("x", "t")``, axes of length 201 and 101, ``values={"u": (201, 101)}``.

    Raises
    ------
    FileNotFoundError
        If the file is missing, or no ``path`` is given and the data folder is not found.
    """
    from scipy.io import loadmat

    f = _file("Allen_Cahn.mat", path)
    d = loadmat(f)
    return Reference(
        ("x", "t"), (d["x"].ravel(), d["t"].ravel()), {"u": d["u"].T}, {"source": str(f)}
    )


def load_cavity(path: str | os.PathLike | None = None) -> Reference:
    """PINNacle's COMSOL ``lid_driven_a4.dat`` (Re = 100) as a Reference.

    The file lists the 101 x 101 nodes of a graded tensor grid in a scrambled order; the
    rows are placed on the grid by nearest coordinate (each node must occur exactly once).
    The pressure is stored as given (it is defined only up to a constant).

    Parameters
    ----------
    path : str or path-like, optional
        The file; default ``lid_driven_a4.dat`` in :func:`shared_data_dir`.

    Returns
    -------
    Reference
        ``names=("x", "y")``, ``values`` ``"u"``, ``"v"``, ``"p"`` of shape (101, 101).

    Raises
    ------
    FileNotFoundError
        If the file is missing, or no ``path`` is given and the data folder is not found.
    ValueError
        If the rows do not form a complete tensor grid.
    """
    f = _file("lid_driven_a4.dat", path)
    a = np.loadtxt(f, comments="%")
    axes = []
    for col in (0, 1):
        # Coordinates repeat with ~1e-18 jitter; cluster them.
        s = np.sort(a[:, col])
        axes.append(s[np.r_[True, np.diff(s) > 1e-9]])
    ix = np.abs(a[:, 0][:, None] - axes[0][None, :]).argmin(axis=1)
    iy = np.abs(a[:, 1][:, None] - axes[1][None, :]).argmin(axis=1)
    shape = (len(axes[0]), len(axes[1]))
    if len(a) != shape[0] * shape[1] or len(np.unique(ix * shape[1] + iy)) != len(a):
        raise ValueError(f"{f} is not a complete tensor grid")
    values = {}
    for k, name in enumerate("uvp"):
        grid = np.empty(shape)
        grid[ix, iy] = a[:, 2 + k]
        values[name] = grid
    return Reference(("x", "y"), tuple(axes), values, {"source": str(f), "re": 100.0})

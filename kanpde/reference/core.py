"""Gridded reference solutions and their on-disk cache.

A :class:`Reference` holds a solution sampled on a tensor-product grid. :func:`cached`
memoises an expensive solver run in an HDF5 file in the user's cache directory.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import numbers
import os
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
from scipy.interpolate import RegularGridInterpolator
from scipy.sparse.linalg import spsolve

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = ["CACHE_FORMAT", "Reference", "cache_dir", "cache_path", "cached"]

#: Version of the on-disk layout; part of every cache key.
CACHE_FORMAT = "1"


@dataclass
class Reference:
    """A solution sampled on a tensor-product grid.

    Parameters
    ----------
    names : tuple of str
        Coordinate names, one per axis, e.g. ``("x", "t")``.
    axes : tuple of ndarray
        Strictly increasing 1-D grid coordinates, one array per axis.
    values : dict of str to ndarray
        Output name -> array of shape ``tuple(len(a) for a in axes)``, indexed like
        ``np.meshgrid(*axes, indexing="ij")``.
    meta : dict
        Provenance: solver, parameters, resolution, wall time, error estimates, ...
    """

    names: tuple[str, ...]
    axes: tuple[np.ndarray, ...]
    values: dict[str, np.ndarray]
    meta: dict = field(default_factory=dict)
    _interpolators: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.names = tuple(str(n) for n in self.names)
        self.axes = tuple(np.ascontiguousarray(a, dtype=np.float64) for a in self.axes)
        if len(self.names) != len(self.axes):
            raise ValueError(f"{len(self.names)} names for {len(self.axes)} axes")
        for name, a in zip(self.names, self.axes, strict=True):
            if a.ndim != 1 or a.size < 1:
                raise ValueError(f"axis {name!r} must be a non-empty 1-D array")
            if a.size > 1 and not np.all(np.diff(a) > 0):
                raise ValueError(f"axis {name!r} must be strictly increasing")
        shape = self.shape
        vals = {}
        for key, v in self.values.items():
            v = np.ascontiguousarray(v, dtype=np.float64)
            if v.shape != shape:
                raise ValueError(f"output {key!r} has shape {v.shape}, grid is {shape}")
            vals[str(key)] = v
        if not vals:
            raise ValueError("a Reference needs at least one output")
        self.values = vals
        self.meta = dict(self.meta)

    @property
    def shape(self) -> tuple[int, ...]:
        """Grid shape ``tuple(len(a) for a in axes)``."""
        return tuple(len(a) for a in self.axes)

    @property
    def outputs(self) -> tuple[str, ...]:
        """Output names in storage order."""
        return tuple(self.values)

    def points(self) -> np.ndarray:
        """All grid points.

        Returns
        -------
        ndarray, shape (M, d)
            ``M = prod(shape)`` points in C order of the ``"ij"``-indexed grid, so row ``k``
            matches ``values[name].ravel()[k]``.
        """
        mesh = np.meshgrid(*self.axes, indexing="ij")
        return np.stack([m.ravel() for m in mesh], axis=-1)

    def _select(self, outputs: Sequence[str] | str | None) -> tuple[str, ...]:
        if outputs is None:
            return self.outputs
        if isinstance(outputs, str):
            outputs = (outputs,)
        missing = [o for o in outputs if o not in self.values]
        if missing:
            raise KeyError(f"unknown outputs {missing}; available: {list(self.values)}")
        return tuple(outputs)

    def flat(self, outputs: Sequence[str] | str | None = None) -> np.ndarray:
        """Outputs at :meth:`points`.

        Parameters
        ----------
        outputs : sequence of str or str, optional
            Which outputs, in which column order (one name for a single column); all of them
            by default.

        Returns
        -------
        ndarray, shape (M, n_outputs)

        Raises
        ------
        KeyError
            If an output is not one of :attr:`outputs`.
        """
        sel = self._select(outputs)
        return np.stack([self.values[o].ravel() for o in sel], axis=-1)

    def interpolate(
        self,
        x: ArrayLike,
        outputs: Sequence[str] | str | None = None,
        method: str | None = None,
    ) -> np.ndarray:
        """Interpolate outputs at arbitrary points inside the grid.

        Parameters
        ----------
        x : array_like, shape (n, d)
            Query points, columns ordered like :attr:`names` (shape ``(n,)`` on a 1-D grid).
        outputs : sequence of str or str, optional
            Which outputs, in which column order (one name for a single column); all of them
            by default.
        method : str, optional
            Any :class:`scipy.interpolate.RegularGridInterpolator` method. Default:
            ``"cubic"`` when every axis has at least 4 points, otherwise ``"linear"``.
            Cubic interpolation overshoots at under-resolved fronts (e.g. the Burgers
            shock); pass ``"linear"`` there if monotonicity matters more than order.

        Returns
        -------
        ndarray, shape (n, n_outputs)

        Raises
        ------
        ValueError
            If ``x`` is not ``(n, d)``, or a point lies outside the grid or is not finite.
        KeyError
            If an output is not one of :attr:`outputs`.
        """
        sel = self._select(outputs)
        x = np.asarray(x, dtype=np.float64)
        d = len(self.axes)
        if x.ndim == 1 and d == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != d:
            raise ValueError(f"points must have shape (n, {d}), got {x.shape}")
        finite = np.isfinite(x).all(axis=1)
        if not finite.all():
            i = int(np.argmin(finite))
            coords = ", ".join(
                f"{n} = {v!r}" for n, v in zip(self.names, x[i].tolist(), strict=True)
            )
            raise ValueError(
                f"Reference.interpolate: non-finite point {coords} (point {i} of {len(x)})"
            )
        # points a rounding error outside the grid (x = 1 + 1e-15 from an affine map) are on it
        x = x.copy()
        for k, a in enumerate(self.axes):
            tol = 64 * np.finfo(np.float64).eps * max(1.0, abs(a[0]), abs(a[-1]))
            col = x[:, k]
            col[(col < a[0]) & (col >= a[0] - tol)] = a[0]
            col[(col > a[-1]) & (col <= a[-1] + tol)] = a[-1]
        outside = (x < [a[0] for a in self.axes]) | (x > [a[-1] for a in self.axes])
        if outside.any():
            i, k = (int(j) for j in np.argwhere(outside)[0])
            a = self.axes[k]
            raise ValueError(
                f"Reference.interpolate: {self.names[k]} = {float(x[i, k])!r} outside the "
                f"reference's range [{float(a[0])!r}, {float(a[-1])!r}] (point {i} of {len(x)})"
            )
        if method is None:
            method = "cubic" if min(self.shape) >= 4 else "linear"
        key = (sel, method)
        interp = self._interpolators.get(key)
        if interp is None:
            data = np.stack([self.values[o] for o in sel], axis=-1)
            interp = _grid_interpolator(self.axes, data, method)
            self._interpolators[key] = interp
        return np.asarray(interp(x)).reshape(len(x), len(sel))


def _grid_interpolator(axes, data, method: str) -> RegularGridInterpolator:
    if method in ("slinear", "cubic", "quintic"):
        # scipy >= 1.13 builds these splines with an iterative solver whose default
        # tolerance leaves ~1e-5 errors; a direct solve makes them exact interpolants.
        try:
            return RegularGridInterpolator(axes, data, method=method, solver=spsolve)
        except TypeError:  # older scipy: no `solver` argument, exact 1-D splines
            pass
    return RegularGridInterpolator(axes, data, method=method)


# ------------------------------------------------------------------ argument checks


def _shown(value: Any) -> str:
    """``value`` as a message shows it: ``nan``, not ``np.float64(nan)``."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return repr(float(value)) if not isinstance(value, numbers.Integral) else repr(int(value))
    return repr(value)


def _check_number(
    where: str,
    name: str,
    value: Any,
    *,
    above: float | None = None,
    at_least: float | None = None,
) -> None:
    """Refuse a non-finite (or non-numeric) ``value``, or one not ``> above`` / ``>= at_least``.

    The value is only checked, never converted, so valid calls compute exactly as before.
    """
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
        value = value.item()
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (above is None or value > above) and (at_least is None or value >= at_least)
    if not ok:
        bound = "" if above is None else f" > {above:g}"
        bound += "" if at_least is None else f" >= {at_least:g}"
        raise ValueError(f"{where}: {name} must be a finite number{bound}, got {_shown(value)}")


def _check_int(
    where: str, name: str, value: Any, minimum: int, *, multiple: int = 1, what: str = ""
) -> None:
    """Refuse a non-integer ``value``, one below ``minimum`` or not a multiple of ``multiple``."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not (ok and value >= minimum and value % multiple == 0):
        kind = {1: "an integer", 2: "an even integer"}.get(multiple, f"a multiple of {multiple}")
        raise ValueError(f"{where}: {name} must be {kind} >= {minimum}{what}, got {_shown(value)}")


# --------------------------------------------------------------------------- cache


def cache_dir() -> Path:
    """Directory for cached references.

    ``$KANPDE_CACHE`` if set, else ``$XDG_CACHE_HOME/kanpde``, else ``~/.cache/kanpde``.
    """
    env = os.environ.get("KANPDE_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "kanpde"


def _jsonable(obj: Any) -> Any:
    """Plain-JSON form of parameters and metadata (tuples become lists)."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        # JSON has no inf/nan; a string keeps the key well defined.
        return f if math.isfinite(f) else repr(f)
    if obj is None or isinstance(obj, str):
        return obj
    raise TypeError(
        f"cannot key a cache entry on {type(obj).__name__} value {obj!r}; "
        "pass plain numbers, strings, booleans, or sequences of them"
    )


def _dumps(obj: Any) -> str:
    return json.dumps(_jsonable(obj), sort_keys=True, separators=(",", ":"))


def cache_path(name: str, solver_version: str = "", **params: Any) -> Path:
    """Cache file used by :func:`cached` for these arguments.

    Parameters
    ----------
    name : str
        The reference's name (the file name starts with it).
    solver_version : str
        The solver's version: a new one makes a new entry.
    **params
        The solver's arguments (JSON-able); they and the above are hashed into the name.

    Returns
    -------
    Path
        ``<cache_dir()>/<name>-<hash>.h5``, the name with characters other than letters,
        digits, ``_``, ``.`` and ``-`` made ``_``.
    """
    key = _dumps({"name": name, "params": params, "solver": solver_version, "format": CACHE_FORMAT})
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "reference"
    return cache_dir() / f"{stem}-{digest}.h5"


def _to_bytes(ref: Reference, header: dict) -> bytes:
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        for k, v in header.items():
            f.attrs[k] = v
        f.attrs["names"] = _dumps(list(ref.names))
        f.attrs["outputs"] = _dumps(list(ref.values))
        f.attrs["meta"] = _dumps(ref.meta)
        ax = f.create_group("axes")
        for i, a in enumerate(ref.axes):
            ax.create_dataset(str(i), data=a)
        vals = f.create_group("values")
        for i, v in enumerate(ref.values.values()):
            vals.create_dataset(str(i), data=v)
    return buf.getvalue()


def _write_atomic(path: Path, data: bytes) -> None:
    from ..results import write_atomic

    write_atomic(path, lambda tmp: Path(tmp).write_bytes(data))


def _read(path: Path, header: dict) -> Reference:
    with h5py.File(path, "r") as f:
        for k, v in header.items():
            stored = f.attrs[k]
            if isinstance(stored, bytes):
                stored = stored.decode()
            if stored != v:
                raise ValueError(f"cache entry {path} has {k}={stored!r}, expected {v!r}")
        names = json.loads(f.attrs["names"])
        outputs = json.loads(f.attrs["outputs"])
        meta = json.loads(f.attrs["meta"])
        axes = tuple(np.asarray(f["axes"][str(i)][()]) for i in range(len(names)))
        values = {o: np.asarray(f["values"][str(i)][()]) for i, o in enumerate(outputs)}
    return Reference(tuple(names), axes, values, meta)


def cached(
    name: str,
    compute: Callable[[], Reference],
    /,
    *,
    solver_version: str = "",
    **params: Any,
) -> Reference:
    """Load a reference from the cache, computing and storing it on a miss.

    Parameters
    ----------
    name : str
        Family name, e.g. ``"burgers"``; also the file-name stem.
    compute : callable
        Returns the :class:`Reference`; called only on a cache miss.
    solver_version : str, optional
        Bump it when the solver's numerics change so stale entries are not reused.
    **params
        Everything ``compute`` depends on (JSON-able: numbers, strings, booleans,
        sequences). The key is ``name`` + SHA-256 of the params, ``solver_version`` and
        :data:`CACHE_FORMAT`.

    Returns
    -------
    Reference
        Its ``meta`` is normalised through JSON (tuples become lists) so that a hit and
        a miss return equal objects.

    Notes
    -----
    Files are HDF5 (no pickle) and are written atomically: a temporary file in the same
    directory, flushed and fsync-ed, then ``os.replace``-d into place, so concurrent
    readers never see a partial file. An unreadable or mismatching file is recomputed
    with a warning. If the cache directory cannot be written, the result is returned
    uncached with a warning.
    """
    path = cache_path(name, solver_version, **params)
    header = {
        "name": name,
        "params": _dumps(params),
        "solver_version": solver_version,
        "format": CACHE_FORMAT,
    }
    if path.exists():
        try:
            cached_ref = _read(path, header)
            # HDF5 has no checksum: a damaged entry can read back well-formed but not finite
            bad = [k for k, v in cached_ref.values.items() if not np.isfinite(v).all()]
            if bad:
                raise ValueError(f"non-finite values in {', '.join(bad)}")
            return cached_ref
        except Exception as exc:  # any unreadable entry is recomputed, never fatal
            warnings.warn(
                f"ignoring unreadable cache file {path}: {exc!r}", RuntimeWarning, stacklevel=2
            )
    ref = compute()
    if not isinstance(ref, Reference):
        raise TypeError(f"compute() returned {type(ref).__name__}, expected Reference")
    ref = Reference(ref.names, ref.axes, ref.values, json.loads(_dumps(ref.meta)))
    bad = [k for k, v in ref.values.items() if not np.isfinite(v).all()]
    if bad:  # a read would refuse it (see above): computing it again is all a cache could do
        warnings.warn(
            f"not caching {name}: non-finite values in {', '.join(bad)}",
            RuntimeWarning,
            stacklevel=2,
        )
        return ref
    from ..results import ResultsError

    try:
        _write_atomic(path, _to_bytes(ref, header))
    except (OSError, ResultsError) as exc:  # write_atomic reports an OSError as ResultsError
        warnings.warn(f"could not write cache file {path}: {exc!r}", RuntimeWarning, stacklevel=2)
    return ref

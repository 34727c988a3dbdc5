"""Domains, boundaries, space-time products and point samplers.

Every function here takes and returns float64 NumPy arrays; points are stored
row-wise, shape ``(n, dim)``, with the time coordinate (if any) in the last
column.  The training engine converts to torch.

Domains
    :class:`Interval`, :class:`Rectangle`, :class:`Box` (n-D), :class:`Disk`,
    :class:`Polygon`, constructive geometry ``A - B``, ``A | B``, ``A & B``
    (:class:`CSG`), :class:`Time` and space-time products ``space * Time(t0, t1)``
    (:class:`SpaceTime`).

Sampling methods (``method=``)
    ``"sobol"`` (scrambled Sobol', the default), ``"lhs"`` (Latin hypercube),
    ``"uniform"`` (i.i.d. from ``numpy.random.default_rng``) and ``"grid"``
    (equispaced).  Random methods always return exactly ``n`` points; ``"grid"``
    returns the nearest structured grid, see :meth:`Domain.sample` and
    :meth:`Domain.boundary`.  Equal seeds give identical arrays.

Boundary pieces
    Every boundary is split into named pieces (edges, faces, the circle, ...).
    ``boundary(n, on=...)`` selects pieces by canonical name, alias, list of
    names, or by a predicate on the points.  See each class for its names and
    :class:`CSG` for how names of combined domains are formed.
"""

from __future__ import annotations

import itertools
import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import cache, cached_property

import numpy as np
from scipy.stats import qmc

__all__ = [
    "METHODS",
    "BoundarySample",
    "GridSample",
    "Domain",
    "Box",
    "Interval",
    "Rectangle",
    "Disk",
    "Polygon",
    "CSG",
    "Time",
    "SpaceTime",
]

METHODS: tuple[str, ...] = ("grid", "uniform", "lhs", "sobol")

Predicate = Callable[[np.ndarray], np.ndarray]
Selection = str | Sequence[str] | Predicate | None

_PROBE_LOG2 = 12  # 4096 probe points per piece for CSG/predicate acceptance estimates
_MEASURE_LOG2 = 16  # Monte-Carlo points for the area/volume of CSG domains


# ----------------------------------------------------------------------------- results


@dataclass
class BoundarySample:
    """Points on a boundary with their outward normals.

    Attributes
    ----------
    points : (n, dim) array
    normals : (n, dim) array
        Outward unit normals (time component 0 on space-time lateral boundaries).
    piece : (n,) int array
        Index into ``names`` of the piece each point lies on.
    names : list of str
        Canonical names of all pieces of the domain (not only the selected ones).
    """

    points: np.ndarray
    normals: np.ndarray
    piece: np.ndarray
    names: list[str]

    def __len__(self) -> int:
        return len(self.points)

    def mask(self, name: str) -> np.ndarray:
        """Boolean mask (n,) of the points on the piece with canonical ``name``."""
        return self.piece == self.names.index(name)


@dataclass
class GridSample:
    """Tensor grid over a bounding box, restricted to a domain.

    Attributes
    ----------
    axes : list of 1-D arrays
        Coordinates along each axis (endpoints included).
    mask : bool array, shape ``(len(axes[0]), len(axes[1]), ...)``
        True where the grid node lies in the (closed) domain.
    points : (mask.sum(), dim) array
        The nodes inside, in C order of ``meshgrid(*axes, indexing="ij")``.
    """

    axes: list[np.ndarray]
    mask: np.ndarray
    points: np.ndarray


# ----------------------------------------------------------------------------- helpers


def _g(v: float) -> str:
    return f"{float(v) + 0.0:g}"  # + 0.0: -0.0 reads "0", so on="x=0" finds the face


def _vec(a: np.ndarray) -> str:
    return "[" + ", ".join(_g(v) for v in a) + "]"


def _lerp(lo, hi, u):
    # lo*(1-u) + hi*u hits both endpoints exactly, unlike lo + u*(hi-lo).
    return lo * (1.0 - u) + hi * u


def _default_names(d: int) -> tuple[str, ...]:
    if d <= 3:
        return ("x", "y", "z")[:d]
    return tuple(f"x{i + 1}" for i in range(d))


def _check_n(n) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise ValueError(f"number of points must be a non-negative integer, got {n!r}")
    return int(n)


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown sampling method {method!r}; choose from {', '.join(METHODS)}")


def _check_seed(seed) -> None:
    ok = isinstance(seed, int | np.integer) and not isinstance(seed, bool) and seed >= 0
    if seed is not None and not ok:
        raise ValueError(f"seed must be None or a non-negative integer, got {seed!r}")


def _check_names(names, d: int, who: str) -> tuple[str, ...]:
    names = tuple(names)
    if len(names) != d or not all(isinstance(s, str) and s for s in names):
        raise ValueError(f"{who} needs {d} non-empty axis names, got {names!r}")
    if len(set(names)) != d:
        raise ValueError(f"{who} axis names must be distinct, got {names!r}")
    return names


def _qmc_engine(cls, k: int, rng: np.random.Generator):
    # SciPy >= 1.15 calls the argument `rng`; older releases call it `seed`.
    try:
        return cls(k, scramble=True, rng=rng)
    except TypeError:
        return cls(k, scramble=True, seed=rng)


class _UnitStream:
    """Endless reproducible stream of points in the unit cube [0, 1)^k."""

    def __init__(self, k: int, method: str, seed: int | None, key: tuple[int, ...]) -> None:
        self.k = k
        # spawn_key decorrelates the streams of different pieces drawn with one seed
        self._rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))
        self._engine = None
        if k > 0 and method == "sobol":
            self._engine = _qmc_engine(qmc.Sobol, k, self._rng)
        elif k > 0 and method == "lhs":
            self._engine = _qmc_engine(qmc.LatinHypercube, k, self._rng)

    def draw(self, m: int) -> np.ndarray:
        if self.k == 0:
            return np.empty((m, 0))
        if self._engine is None:
            return self._rng.random((m, self.k))
        with warnings.catch_warnings():
            # Sobol' balance is best for powers of two, but n is the user's choice.
            warnings.filterwarnings("ignore", message=".*balance properties.*")
            return self._engine.random(m)


def _rejection(n: int, draw, rate: float, what: str) -> list[np.ndarray]:
    """Call ``draw(m) -> (arrays, mask)`` until exactly ``n`` rows are accepted; ``rate`` is
    the expected acceptance (0: unknown, the region too thin for its area estimate)."""
    chunks: list[tuple[np.ndarray, ...]] = []
    got = drawn = 0
    if rate > 0:
        # 50 times the draws expected at the region's share of the box: a thin but valid
        # region (a polygon strip filling 0.3 % of its box) is sampled, a hopeless one ends
        rate = max(rate, 1e-4)
        limit = max(min(int(50 * n / rate), 2**26), 200 * n) + 100_000  # never below before
    else:
        rate, limit = 1e-3, 200 * n + 100_000
    while got < n:
        m = min(int(math.ceil((n - got) / rate * 1.1)) + 16, 2**20, limit - drawn)
        if m <= 0:
            raise ValueError(
                f"{what}: only {got} of {n} points accepted after {drawn} draws; "
                "the selected region is empty or too small"
            )
        arrays, mask = draw(m)
        drawn += m
        chunks.append(tuple(a[mask] for a in arrays))
        got += int(mask.sum())
        rate = max(got / drawn, 1e-4)
    return [np.concatenate(parts)[:n] for parts in zip(*chunks, strict=True)]


def _allocate(n: int, weights: np.ndarray) -> np.ndarray:
    """Split n into integer counts proportional to weights (largest remainder),
    giving every positive-weight entry at least one point when n allows."""
    w = np.asarray(weights, dtype=float)
    q = n * w / w.sum()
    c = np.floor(q).astype(int)
    order = np.argsort(-(q - c), kind="stable")
    c[order[: n - c.sum()]] += 1
    positive = w > 0
    if n >= positive.sum():
        for i in np.flatnonzero(positive & (c == 0)):
            j = int(np.argmax(c))
            c[j] -= 1
            c[i] += 1
    return c


def _grid_counts(widths, target: float) -> list[int]:
    """Per-axis node counts with near-equal spacing and product closest to target."""
    w = np.asarray(widths, dtype=float)
    k = len(w)
    if k == 0:
        return []
    if k == 1:
        return [max(1, round(target))]
    # an axis too short for one spacing gets one node, and the spacing is shared anew by the
    # others (a 1 x 1e-6 rectangle asked for 100 nodes got 10000 when it kept the first one)
    free = np.ones(k, dtype=bool)
    raws = []
    while True:
        h = (np.prod(w[free]) / max(target, 1.0)) ** (1.0 / free.sum())
        raws.append(np.where(free, w / h, 1.0))
        short = free & (w / h < 1.0)
        if not short.any() or short.sum() == free.sum():
            break
        free &= ~short
    if k > 12:  # 2**k candidates would be too many; plain rounding is good enough
        return [max(1, round(r)) for r in raws[-1]]

    def closest(raw) -> tuple[int, ...]:
        options = [sorted({max(1, math.floor(r)), max(1, math.ceil(r))}) for r in raw]
        return min(itertools.product(*options), key=lambda c: (abs(math.prod(c) - target), c))

    # each sharing of the spacing proposes its best; the product closest to the target wins
    # (the first sharing on a tie)
    return list(min(map(closest, raws), key=lambda c: abs(math.prod(c) - target)))


def _param_grid(extents, periodic, target: float) -> np.ndarray:
    """Grid of about ``target`` parameter points in [0, 1]^k, shape (m, k).

    Non-periodic parameters include both endpoints; periodic ones exclude 1."""
    k = len(extents)
    if k == 0:
        return np.zeros((max(1, round(target)), 0))
    axes = []
    for c, per in zip(_grid_counts(extents, target), periodic, strict=True):
        if per:
            axes.append(np.arange(c) / c)
        else:
            axes.append(np.linspace(0.0, 1.0, c) if c > 1 else np.array([0.5]))
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([a.ravel() for a in mesh], axis=1)


@cache
def _probe_params(k: int) -> np.ndarray:
    """Fixed low-discrepancy parameters used to estimate acceptance fractions."""
    if k == 0:
        return np.zeros((1, 0))
    engine = _qmc_engine(qmc.Sobol, k, np.random.default_rng(20240601))
    return engine.random_base2(_PROBE_LOG2)


@dataclass(frozen=True)
class _Piece:
    """A parametrised boundary piece: u in [0, 1]^k  ->  points, normals.

    ``keep`` (CSG) filters points that are not on the combined boundary and may
    flip normals; ``fraction`` is the estimated share of the piece it keeps.
    Zero-dimensional pieces (ends of an interval) have k = 0 and measure 1.
    """

    name: str
    aliases: tuple[str, ...]
    measure: float
    extents: tuple[float, ...]
    periodic: tuple[bool, ...]
    param: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
    keep: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None
    fraction: float = 1.0
    groups: tuple[str, ...] = ()

    @property
    def k(self) -> int:
        return len(self.extents)

    def map(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x, nrm = self.param(u)
        if self.keep is None:
            return x, nrm, np.ones(len(x), dtype=bool)
        mask, nrm = self.keep(x, nrm)
        return x, nrm, mask


def _keep_closure(
    domain: Domain, piece: _Piece, u: np.ndarray, x: np.ndarray, nrm: np.ndarray, mask: np.ndarray
) -> None:
    """Also keep grid nodes (parameters ``u``, points ``x``) next to kept parts of a CSG piece,
    in place.

    A node where the piece meets another (a box's edge or corner, or where a cut ends the kept
    part) fails the keep test, whose probes then land on the neighbouring boundary. The node
    belongs to the closed boundary if it lies on the domain's boundary and the piece's point a
    step ``δ`` away is kept: towards the parameter centre (corners) or along one parameter
    (cuts).
    """
    tol = 1e-9 * float(np.linalg.norm(domain._hi - domain._lo))
    on_boundary = domain.contains(x, tol) & ~domain.contains(x, -tol)
    delta = 1e-6
    steps = [2 * delta * (0.5 - u)]
    for axis in range(piece.k):
        for sign in (-delta, delta):
            step = np.zeros_like(u)
            step[:, axis] = sign
            steps.append(step)
    periodic = np.array(piece.periodic, dtype=bool)
    for step in steps:
        todo = np.flatnonzero(~mask & on_boundary)
        if not len(todo):
            return
        v = u[todo] + step[todo]
        v[:, periodic] %= 1.0
        valid = ((v >= 0) & (v <= 1)).all(axis=1)
        _, n2, kept = piece.map(np.clip(v, 0.0, 1.0))
        kept &= valid
        mask[todo[kept]] = True
        # the node's own normal, oriented as the kept neighbour's (a curved piece's normal a
        # step away is off by the curvature times the step)
        own = piece.param(u[todo[kept]])[1]
        flip = np.where((own * n2[kept]).sum(axis=1) < 0, -1.0, 1.0)
        nrm[todo[kept]] = own * flip[:, None]


def _predicate_mask(pred: Predicate, x: np.ndarray) -> np.ndarray:
    try:
        mask = np.asarray(pred(x))
    except Exception as e:  # noqa: BLE001 - user code: say what it was given
        first = (str(e).strip().splitlines() or [""])[0]
        raise ValueError(
            f"on= predicate raised {type(e).__name__} ({first}); it gets the points as a NumPy "
            f"array ({len(x)}, {x.shape[1]}) and returns a boolean mask, e.g. "
            "lambda p: np.abs(p[:, 0]) > 0.5"
        ) from e
    if mask.shape != (len(x),) or mask.dtype != bool:
        # a float mask such as x[:, 0] * 0 + 1.0 was taken as true/false
        raise ValueError(
            f"boundary predicate must return a boolean mask of shape ({len(x)},), "
            f"got {mask.dtype} of shape {mask.shape}"
        )
    return mask


# ----------------------------------------------------------------------------- base class


class Domain(ABC):
    """Abstract domain: a closed bounded set of points in R^dim.

    Attributes
    ----------
    dim : int
        Number of coordinates (columns) of a point.
    names : tuple of str
        Axis names; a space-time domain appends the time name last.
    time_axis : int or None
        Column of time (always the last one) or None for steady domains.
    """

    dim: int
    names: tuple[str, ...]
    time_axis: int | None = None
    _lo: np.ndarray
    _hi: np.ndarray
    _exact_map = False  # True if _from_unit maps the cube onto the domain (no rejection)

    def _setup(self, lo, hi, names, time_axis: int | None = None) -> None:
        self._lo = np.array(lo, dtype=float)
        self._hi = np.array(hi, dtype=float)
        self._lo.setflags(write=False)
        self._hi.setflags(write=False)
        self.dim = len(self._lo)
        self.names = tuple(names)
        self.time_axis = time_axis

    # -- geometry ---------------------------------------------------------------------

    @property
    def spatial_axes(self) -> tuple[int, ...]:
        """Indices of all columns except time."""
        return tuple(i for i in range(self.dim) if i != self.time_axis)

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Bounding box ``(lo, hi)``, each of shape (dim,)."""
        return self._lo.copy(), self._hi.copy()

    @abstractmethod
    def contains(self, x: np.ndarray, tol: float | None = None) -> np.ndarray:
        """Membership of points in the closed domain.

        Parameters
        ----------
        x : (m, dim) array
            Points; ``(m,)`` on a 1-D domain.
        tol : float or None
            Points within ``tol`` of the boundary count as inside; a negative ``tol`` tests
            for lying inside by at least ``|tol|`` (strict interior). The default is
            ``1e-12`` times ``max(1, largest |coordinate| of the bounding box)``.

        Returns
        -------
        (m,) bool array

        Raises
        ------
        ValueError
            If ``x`` is not of shape ``(m, dim)``.
        """

    @property
    @abstractmethod
    def measure(self) -> float:
        """Length / area / volume (space-time: spatial measure times duration)."""

    @property
    def boundary_measure(self) -> float:
        """Total measure of the boundary pieces (points of a 1-D boundary count 1)."""
        return float(sum(p.measure * p.fraction for p in self._pieces))

    def piece_names(self) -> list[str]:
        """All names accepted by ``boundary(on=...)``: canonical names first,
        then aliases, then group names (CSG operands)."""
        return list(self._lookup)

    def _as_points(self, x) -> np.ndarray:
        a = np.asarray(x, dtype=float)
        if a.ndim == 1 and self.dim == 1:
            a = a[:, None]
        if a.ndim != 2 or a.shape[1] != self.dim:
            raise ValueError(f"{self!r}: expected points of shape (m, {self.dim}), got {a.shape}")
        return a

    @property
    def _fill(self) -> float:
        """Share of the bounding box covered by the domain (rejection acceptance)."""
        return min(1.0, self.measure / float(np.prod(self._hi - self._lo)))

    def _from_unit(self, u: np.ndarray) -> np.ndarray:
        return _lerp(self._lo, self._hi, u)

    def _accepts(self, x: np.ndarray) -> np.ndarray:
        if self._exact_map:
            return np.ones(len(x), dtype=bool)
        return self.contains(x)

    def _leaves(self) -> list[Domain]:
        return [self]

    @abstractmethod
    def _make_pieces(self) -> list[_Piece]: ...

    @cached_property
    def _pieces(self) -> list[_Piece]:
        return self._make_pieces()

    @cached_property
    def _lookup(self) -> dict[str, list[int]]:
        table: dict[str, list[int]] = {}
        for i, p in enumerate(self._pieces):
            table[p.name] = [i]
        for i, p in enumerate(self._pieces):
            for a in p.aliases:
                table.setdefault(a, [i])
        for i, p in enumerate(self._pieces):
            for g in p.groups:
                table.setdefault(g, []).append(i)
        return table

    # -- sampling ---------------------------------------------------------------------

    def sample(self, n: int, method: str = "sobol", seed: int | None = 0) -> np.ndarray:
        """Points in the domain (space-time: in space x [t0, t1]).

        Parameters
        ----------
        n : int
            Number of points.  Random methods return exactly ``n`` rows.
        method : {"sobol", "lhs", "uniform", "grid"}
            ``"grid"`` returns a cell-centred tensor grid over the bounding box
            (no point on the bounding box faces), restricted to the domain, with
            near-equal spacing per axis and per-axis counts chosen so that the
            number of points inside is as close to ``n`` as a tensor grid allows
            (exactly ``n`` for an interval; ``k**d`` for a cube with ``n = k**d``).
        seed : int or None
            Seed of the random stream; ``None`` draws fresh entropy.

        Returns
        -------
        (n, dim) array
        """
        n = _check_n(n)
        _check_method(method)
        _check_seed(seed)
        return self._interior(n, method, seed, key=(0,))

    def _interior(self, n: int, method: str, seed, key: tuple[int, ...]) -> np.ndarray:
        if n == 0:
            return np.empty((0, self.dim))
        if method == "grid":
            return self._grid_interior(n)
        stream = _UnitStream(self.dim, method, seed, key)
        if self._exact_map:
            return self._from_unit(stream.draw(n))

        def draw(m):
            x = self._from_unit(stream.draw(m))
            return (x,), self._accepts(x)

        return _rejection(n, draw, self._fill, f"{self!r}.sample")[0]

    def _grid_interior(self, n: int) -> np.ndarray:
        w = self._hi - self._lo
        # a grid of n / fill nodes over the box puts about n inside: bounded, or it would
        # ask for petabytes on an empty or hair-thin domain (a large n on a full box is for
        # the memory check of the points themselves)
        if self._fill < 1e-4 and n / max(self._fill, 1e-300) > 1e8:
            raise ValueError(
                f"{self!r}: a grid of {n} points needs a grid over the whole bounding box, and "
                f"the domain fills {self._fill:.1e} of it (empty, or too thin for a grid); "
                "use method='sobol'"
            )
        counts = _grid_counts(w, n / self._fill)
        axes = [self._lo[i] + (np.arange(c) + 0.5) / c * w[i] for i, c in enumerate(counts)]
        mesh = np.meshgrid(*axes, indexing="ij")
        pts = np.stack([a.ravel() for a in mesh], axis=1)
        return pts[self.contains(pts)]

    def boundary(
        self,
        n: int,
        on: Selection = None,
        method: str = "sobol",
        seed: int | None = 0,
    ) -> BoundarySample:
        """Points on the boundary (space-time: the lateral boundary) with normals.

        Parameters
        ----------
        n : int
            Number of points, split among the selected pieces in proportion to
            their measure (length/area), at least one per piece when ``n`` allows.
            Random methods return exactly ``n`` points.  ``"grid"`` places each
            piece's share on an equispaced grid including the piece's end points
            (a square with n=204 gives 51 points per edge, corners repeated); this
            is exact for straight edges, circles and interval ends, and approximate
            (nearest tensor grid, or filtered by CSG/predicate) otherwise.
        on : None, str, list of str, or callable
            None: the whole boundary.  A piece name or alias (see
            :meth:`piece_names`), or a list of them.  A callable
            ``f(points (m, dim)) -> bool mask (m,)`` keeps only boundary points
            where it is True (rejection sampling).
        method : {"sobol", "lhs", "uniform", "grid"}
        seed : int or None

        Returns
        -------
        BoundarySample
        """
        n = _check_n(n)
        _check_method(method)
        _check_seed(seed)
        pieces = self._pieces
        idx, pred, rates, weights = self._selection(on)
        counts = _allocate(n, weights) if n > 0 else np.zeros(len(idx), dtype=int)
        pts, nrm, lab = [], [], []
        for i, c, rate in zip(idx, counts, rates, strict=True):
            if c == 0:
                continue
            x, nr = self._sample_piece(pieces[i], int(c), method, seed, (1, i), rate, pred)
            pts.append(x)
            nrm.append(nr)
            lab.append(np.full(len(x), i, dtype=int))
        if not pts:
            pts, nrm, lab = [np.empty((0, self.dim))], [np.empty((0, self.dim))], [np.empty(0, int)]
        return BoundarySample(
            points=np.concatenate(pts),
            normals=np.concatenate(nrm),
            piece=np.concatenate(lab),
            names=[p.name for p in pieces],
        )

    def boundary_pieces(self, on: Selection = None) -> int:
        """Number of boundary pieces a selection covers.

        Parameters
        ----------
        on : None, str, list of str, or callable
            As for :meth:`boundary`; for a predicate, the pieces it accepts points of count.

        Returns
        -------
        int

        Raises
        ------
        ValueError
            If the domain has no boundary pieces, or ``on`` is empty, names an unknown piece,
            or is a predicate that accepts no boundary point.
        """
        return int(np.count_nonzero(self._selection(on)[3] > 0))

    def _selection(self, on: Selection):
        """Selected piece indices, predicate, accepted fraction and sampling weight of each."""
        pieces = self._pieces
        if not pieces:
            hint = "; use initial() for t = t0" if self.time_axis is not None else ""
            raise ValueError(f"{self!r} has no boundary pieces{hint}")
        idx, pred = self._select(on)
        rates = np.array([pieces[i].fraction for i in idx])
        if pred is not None:
            rates = np.array([self._predicate_fraction(pieces[i], pred) for i in idx])
            if not rates.any():
                raise ValueError(
                    f"boundary predicate selects no point of {self!r} "
                    f"(none of {len(idx) * 2**_PROBE_LOG2} probe points accepted)"
                )
        weights = np.array([pieces[i].measure for i in idx]) * rates
        return idx, pred, rates, weights

    def _select(self, on: Selection) -> tuple[list[int], Predicate | None]:
        everything = list(range(len(self._pieces)))
        if on is None:
            return everything, None
        if callable(on):
            return everything, on
        if isinstance(on, str):
            names = [on]
        elif isinstance(on, Iterable):
            names = list(on)
        else:
            raise ValueError(
                f"boundary selection on={on!r}: expected a piece name, a list of names or a "
                "predicate"
            )
        if not names:
            raise ValueError(f"empty boundary selection for {self!r}")
        chosen: set[int] = set()
        for name in names:
            if not isinstance(name, str):
                raise ValueError(f"boundary selection must be names or one predicate, got {name!r}")
            if name not in self._lookup:
                if self.time_axis is not None:
                    t, t0 = self.names[self.time_axis], self.bounds[0][self.time_axis]
                    if name in ("initial", f"{t}min", f"{t}={t0:g}", f"{t}={t0}"):
                        raise ValueError(
                            f"{name!r}: the initial time is not a boundary piece of {self!r}; a "
                            "condition there is Initial(value) (or Initial(value, derivative=1)"
                            "), whose points .initial(n) draws"
                        )
                raise ValueError(
                    f"unknown boundary piece {name!r} for {self!r}; "
                    f"known: {', '.join(self.piece_names())}"
                )
            chosen.update(self._lookup[name])
        return sorted(chosen), None

    def _predicate_fraction(self, piece: _Piece, pred: Predicate) -> float:
        x, _, mask = piece.map(_probe_params(piece.k))
        return float(np.mean(mask & _predicate_mask(pred, x)))

    def _sample_piece(self, piece, c, method, seed, key, rate, pred):
        if method == "grid":
            u = _param_grid(piece.extents, piece.periodic, c / rate)
            x, nr, mask = piece.map(u)
            if piece.keep is not None and not mask.all():
                _keep_closure(self, piece, u, x, nr, mask)
            if pred is not None:
                mask &= _predicate_mask(pred, x)
            return x[mask], nr[mask]
        stream = _UnitStream(piece.k, method, seed, key)
        if piece.keep is None and pred is None:
            return piece.param(stream.draw(c))

        def draw(m):
            x, nr, mask = piece.map(stream.draw(m))
            if pred is not None:
                mask &= _predicate_mask(pred, x)
            return (x, nr), mask

        x, nr = _rejection(c, draw, rate, f"{self!r}.boundary (piece {piece.name!r})")
        return x, nr

    def initial(self, n: int, method: str = "sobol", seed: int | None = 0) -> np.ndarray:
        """Points of the initial slice t = t0; space-time domains (and :class:`Time`) only.

        Parameters
        ----------
        n : int
            Number of points (``"grid"``: about ``n``, the spatial grid of :meth:`sample`).
        method : {"sobol", "lhs", "uniform", "grid"}
        seed : int or None
            Seed of the random stream; ``None`` draws fresh entropy.

        Returns
        -------
        (n, dim) array
            Time, the last column, is t0.

        Raises
        ------
        ValueError
            On a steady domain (no time axis), or for a bad ``n``, ``method`` or ``seed``.
        """
        raise ValueError(
            f"{self!r} is steady (no time axis); initial() needs a space-time domain "
            "such as domain * Time(0, 1)"
        )

    def grid(self, n: int | Sequence[int]) -> GridSample:
        """Tensor grid over the bounding box, with the mask of the nodes inside the domain.

        Parameters
        ----------
        n : int or sequence of int
            Nodes per axis (endpoints included), or one count per axis.

        Returns
        -------
        GridSample

        Raises
        ------
        ValueError
            If ``n`` is not a positive integer or ``dim`` positive integers.
        """
        counts = [n] * self.dim if isinstance(n, int | np.integer) else list(n)
        if len(counts) != self.dim or any(
            isinstance(c, bool) or not isinstance(c, int | np.integer) or c < 1 for c in counts
        ):
            raise ValueError(
                f"grid() needs a positive integer or {self.dim} positive integers, got {n!r}"
            )
        axes = [np.linspace(self._lo[i], self._hi[i], c) for i, c in enumerate(counts)]
        mesh = np.meshgrid(*axes, indexing="ij")
        pts = np.stack([a.ravel() for a in mesh], axis=1)
        inside = self.contains(pts)
        return GridSample(axes=axes, mask=inside.reshape(counts), points=pts[inside])

    # -- algebra ----------------------------------------------------------------------

    def __sub__(self, other: Domain) -> CSG:
        return CSG("-", self, other) if isinstance(other, Domain) else NotImplemented

    def __or__(self, other: Domain) -> CSG:
        return CSG("|", self, other) if isinstance(other, Domain) else NotImplemented

    def __and__(self, other: Domain) -> CSG:
        return CSG("&", self, other) if isinstance(other, Domain) else NotImplemented

    def __mul__(self, other: Domain) -> SpaceTime:
        if isinstance(other, Time) and self.time_axis is None:
            return SpaceTime(self, other)
        if isinstance(self, Time) and isinstance(other, Domain) and other.time_axis is None:
            return SpaceTime(other, self)
        if isinstance(other, Domain):  # Python's own message would not say what * is for
            raise TypeError(
                f"{self!r} * {other!r}: `*` makes a space-time domain from a spatial domain and "
                "a Time(t0, t1); for a box in space use Rectangle or Box"
            )
        return NotImplemented


# ----------------------------------------------------------------------------- boxes


class Box(Domain):
    """Axis-aligned box ``[lo_0, hi_0] x ... x [lo_{d-1}, hi_{d-1}]``.

    Parameters
    ----------
    lo, hi : sequence of float
        Lower and upper bounds, one per axis (``lo < hi`` on each).
    names : sequence of str, optional
        Distinct axis names (default ``x``, ``y``, ``z``; from 4-D ``x1``, ``x2``, ...).

    Raises
    ------
    ValueError
        If the bounds are not finite 1-D sequences of equal positive length with ``lo < hi``,
        or the names are not ``d`` distinct non-empty strings.

    Notes
    -----
    Face names (axis ``a`` with bounds ``lo``, ``hi``): ``"<a>min"``/``"<a>max"``
    and ``"<a>=<lo:g>"``/``"<a>=<hi:g>"`` always; canonical names are
    ``left/right`` (1-D), ``left/right/bottom/top`` (2-D, bottom is y = lo_1), and
    in 3-D ``left/right`` (x), ``front/back`` (y = lo_1 / hi_1) and
    ``bottom/top`` (z): z points up and the viewer looks along +y.  From 4-D on
    the canonical names are ``"<a>min"``/``"<a>max"``.  Faces are ordered axis by
    axis, min before max.
    """

    _exact_map = True
    _WORDS = {
        1: (("left", "right"),),
        2: (("left", "right"), ("bottom", "top")),
        3: (("left", "right"), ("front", "back"), ("bottom", "top")),
    }

    def __init__(
        self, lo: Sequence[float], hi: Sequence[float], names: Sequence[str] | None = None
    ) -> None:
        self._init_box(lo, hi, names, None)

    def _init_box(self, lo, hi, names, expect: int | None) -> None:
        who = type(self).__name__
        lo_a, hi_a = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
        if (
            lo_a.ndim != 1
            or hi_a.ndim != 1
            or len(lo_a) != len(hi_a)
            or len(lo_a) == 0
            or (expect is not None and len(lo_a) != expect)
        ):
            need = f"{expect} entries each" if expect else "the same positive length"
            raise ValueError(
                f"{who}: lo and hi must be 1-D with {need}, "
                f"got shapes {lo_a.shape} and {hi_a.shape}"
            )
        if not (np.isfinite(lo_a).all() and np.isfinite(hi_a).all()):
            raise ValueError(f"{who}: bounds must be finite, got lo={lo_a} hi={hi_a}")
        if np.any(lo_a >= hi_a):
            raise ValueError(
                f"{who}: need lo < hi on every axis, got lo={_vec(lo_a)} hi={_vec(hi_a)}"
            )
        d = len(lo_a)
        names = _default_names(d) if names is None else _check_names(names, d, who)
        self._setup(lo_a, hi_a, names)

    def contains(self, x: np.ndarray, tol: float | None = None) -> np.ndarray:
        x = self._as_points(x)
        tol = _default_tol(self) if tol is None else tol
        return np.all((x >= self._lo - tol) & (x <= self._hi + tol), axis=1)

    @property
    def measure(self) -> float:
        return float(np.prod(self._hi - self._lo))

    def _make_pieces(self) -> list[_Piece]:
        d = self.dim
        words = self._WORDS.get(d)
        faces = []
        for axis in range(d):
            for side in (0, 1):
                a = self.names[axis]
                value = (self._lo, self._hi)[side][axis]
                minmax = f"{a}{('min', 'max')[side]}"
                canonical = words[axis][side] if words else minmax
                aliases = [f"{a}={_g(value)}"] + ([minmax] if words else [])
                faces.append(self._face(axis, side, canonical, aliases))
        # `x=<value:g>` aliases may coincide after rounding; keep only unambiguous ones
        seen: dict[str, int] = {}
        for p in faces:
            for s in (p.name, *p.aliases):
                seen[s] = seen.get(s, 0) + 1
        return [replace(p, aliases=tuple(s for s in p.aliases if seen[s] == 1)) for p in faces]

    def _face(self, axis: int, side: int, name: str, aliases: list[str]) -> _Piece:
        lo, hi, d = self._lo, self._hi, self.dim
        other = [j for j in range(d) if j != axis]
        value = (lo, hi)[side][axis]
        normal = np.zeros(d)
        normal[axis] = 1.0 if side else -1.0

        def param(u):
            x = np.empty((len(u), d))
            x[:, other] = _lerp(lo[other], hi[other], u)
            x[:, axis] = value
            return x, np.tile(normal, (len(u), 1))

        widths = hi[other] - lo[other]
        return _Piece(
            name=name,
            aliases=tuple(aliases),
            measure=float(np.prod(widths)),
            extents=tuple(float(w) for w in widths),
            periodic=(False,) * len(other),
            param=param,
        )

    def __repr__(self) -> str:
        extra = "" if self.names == _default_names(self.dim) else f", names={self.names!r}"
        return f"{type(self).__name__}({_vec(self._lo)}, {_vec(self._hi)}{extra})"


class Interval(Box):
    """Interval ``[a, b]``; pieces ``left`` (x = a) and ``right`` (x = b), aliases
    ``"<name>=<a:g>"``, ``"<name>min"`` etc.  The two end points count as measure 1 each.

    Parameters
    ----------
    a, b : float
        End points, finite, ``a < b``.
    name : str
        Axis name.

    Raises
    ------
    ValueError
        If the end points are not finite with ``a < b``, or ``name`` is empty.
    """

    def __init__(self, a: float, b: float, name: str = "x") -> None:
        self._init_box([a], [b], (name,), 1)

    def __repr__(self) -> str:
        extra = "" if self.names == ("x",) else f", name={self.names[0]!r}"
        return f"{type(self).__name__}({_g(self._lo[0])}, {_g(self._hi[0])}{extra})"


class Rectangle(Box):
    """Rectangle ``[lo0, hi0] x [lo1, hi1]``; pieces ``left`` (x = lo0), ``right``,
    ``bottom`` (y = lo1), ``top``, aliases ``"x=<lo0:g>"``, ``"xmin"``, ....

    Parameters
    ----------
    lo, hi : sequence of float
        ``(lo0, lo1)`` and ``(hi0, hi1)``, finite, ``lo < hi`` on both axes.
    names : sequence of str
        Two distinct axis names.

    Raises
    ------
    ValueError
        If the bounds are not two finite numbers each with ``lo < hi``, or the names are not
        two distinct non-empty strings.
    """

    def __init__(
        self, lo: Sequence[float], hi: Sequence[float], names: Sequence[str] = ("x", "y")
    ) -> None:
        self._init_box(lo, hi, names, 2)


class Time(Interval):
    """Time interval ``[t0, t1]``.  Multiply a spatial domain by it to get a
    :class:`SpaceTime`.  Alone it is a 1-D domain (for ODEs) with
    ``time_axis = 0``, no boundary pieces and an :meth:`initial` point t0.

    Parameters
    ----------
    t0, t1 : float
        Initial and final time, finite, ``t0 < t1``.
    name : str
        Axis name.

    Raises
    ------
    ValueError
        If the times are not finite with ``t0 < t1``, or ``name`` is empty.
    """

    def __init__(self, t0: float, t1: float, name: str = "t") -> None:
        super().__init__(t0, t1, name)
        self.time_axis = 0

    @property
    def t0(self) -> float:
        """Initial time."""
        return float(self._lo[0])

    @property
    def t1(self) -> float:
        """Final time."""
        return float(self._hi[0])

    def _make_pieces(self) -> list[_Piece]:
        return []

    def initial(self, n: int, method: str = "sobol", seed: int | None = 0) -> np.ndarray:
        _check_method(method)
        _check_seed(seed)
        return np.full((_check_n(n), 1), self.t0)

    def __repr__(self) -> str:
        extra = "" if self.names == ("t",) else f", name={self.names[0]!r}"
        return f"Time({_g(self.t0)}, {_g(self.t1)}{extra})"


# ----------------------------------------------------------------------------- curved / polygonal


def _default_tol(domain: Domain) -> float:
    """:meth:`Domain.contains`'s default tolerance: ``1e-12`` times ``max(1, largest |coordinate|
    of the bounding box)``, since round-off grows with the coordinates (at 1e4 a distance to an
    edge is already off by ~2e-12, and a fixed 1e-12 put the domain's own boundary points
    outside). Tolerances passed explicitly are used as given."""
    return 1e-12 * max(1.0, float(np.abs(domain._lo).max()), float(np.abs(domain._hi).max()))


class Disk(Domain):
    """Closed disk of ``radius`` around ``center``; one piece ``"circle"``.

    Interior points come from the area-preserving polar map of the unit square,
    so no rejection is needed.

    Parameters
    ----------
    center : sequence of float
        ``(2,)`` centre, finite.
    radius : float
        Radius, positive.
    names : sequence of str
        Two distinct axis names.

    Raises
    ------
    ValueError
        If ``center`` is not two finite numbers, ``radius`` is not positive and finite, or
        the names are not two distinct non-empty strings.
    """

    _exact_map = True

    def __init__(
        self, center: Sequence[float], radius: float, names: Sequence[str] = ("x", "y")
    ) -> None:
        c = np.array(center, dtype=float)
        if c.shape != (2,) or not np.isfinite(c).all():
            raise ValueError(f"Disk: center must be 2 finite numbers, got shape {c.shape}")
        r = float(radius)
        if not (np.isfinite(r) and r > 0):
            raise ValueError(f"Disk: radius must be positive, got {radius!r}")
        self.center, self.radius = c, r
        self.center.setflags(write=False)
        self._setup(c - r, c + r, _check_names(names, 2, "Disk"))

    def contains(self, x: np.ndarray, tol: float | None = None) -> np.ndarray:
        x = self._as_points(x)
        tol = _default_tol(self) if tol is None else tol
        return np.hypot(x[:, 0] - self.center[0], x[:, 1] - self.center[1]) <= self.radius + tol

    @property
    def measure(self) -> float:
        return math.pi * self.radius**2

    def _from_unit(self, u: np.ndarray) -> np.ndarray:
        rho = self.radius * np.sqrt(u[:, 0])
        th = 2.0 * np.pi * u[:, 1]
        return self.center + np.stack([rho * np.cos(th), rho * np.sin(th)], axis=1)

    def _make_pieces(self) -> list[_Piece]:
        def param(u):
            th = 2.0 * np.pi * u[:, 0]
            nrm = np.stack([np.cos(th), np.sin(th)], axis=1)
            return self.center + self.radius * nrm, nrm

        length = 2.0 * math.pi * self.radius
        return [_Piece("circle", (), length, (length,), (True,), param)]

    def __repr__(self) -> str:
        extra = "" if self.names == ("x", "y") else f", names={self.names!r}"
        return f"Disk({_vec(self.center)}, {_g(self.radius)}{extra})"


class Polygon(Domain):
    """Simple polygon with vertices (m, 2) in either orientation.

    Pieces ``"edge0"`` ... ``"edge{m-1}"``, edge i running from vertex i to
    vertex i+1 (mod m).  A repeated closing vertex is dropped.  Membership uses
    even-odd ray crossing plus a distance-to-edge test, so points on edges
    (within the ``tol`` of :meth:`contains`) are inside.

    Parameters
    ----------
    vertices : (m, 2) array_like
        Vertices in order, finite; a closing vertex equal to the first is dropped.
    names : sequence of str
        Two distinct axis names.

    Raises
    ------
    ValueError
        If ``vertices`` is not finite ``(m, 2)`` with at least 3 distinct vertices,
        consecutive vertices coincide, edges cross, or the area is zero; or if the names are
        not two distinct non-empty strings.
    """

    def __init__(
        self, vertices: Sequence[Sequence[float]] | np.ndarray, names: Sequence[str] = ("x", "y")
    ) -> None:
        v = np.array(vertices, dtype=float)
        if v.ndim != 2 or v.shape[1] != 2 or not np.isfinite(v).all():
            raise ValueError(f"Polygon: vertices must be finite with shape (m, 2), got {v.shape}")
        if len(v) > 1 and np.array_equal(v[0], v[-1]):
            v = v[:-1]
        if len(v) < 3:
            raise ValueError(f"Polygon: needs at least 3 distinct vertices, got {len(v)}")
        e = np.roll(v, -1, axis=0) - v
        if np.any(np.hypot(e[:, 0], e[:, 1]) == 0):
            raise ValueError("Polygon: consecutive vertices must differ")
        self.vertices = v
        self.vertices.setflags(write=False)
        self._check_simple()
        signed = 0.5 * float(
            np.sum(v[:, 0] * np.roll(v[:, 1], -1) - np.roll(v[:, 0], -1) * v[:, 1])
        )
        scale = float(np.ptp(v, axis=0).max())
        if abs(signed) <= 1e-14 * scale**2:
            raise ValueError("Polygon: vertices enclose zero area")
        self._area = abs(signed)
        self._ccw = signed > 0
        self._setup(v.min(axis=0), v.max(axis=0), _check_names(names, 2, "Polygon"))

    def _check_simple(self) -> None:
        v, m = self.vertices, len(self.vertices)
        pairs = [(i, j) for i in range(m) for j in range(i + 2, m) if not (i == 0 and j == m - 1)]
        if not pairs:
            return
        i, j = np.array(pairs).T
        a, b, c, d = v[i], v[(i + 1) % m], v[j], v[(j + 1) % m]

        def cross(p, q, r):  # orientation of r relative to segment p -> q
            return (q[:, 0] - p[:, 0]) * (r[:, 1] - p[:, 1]) - (q[:, 1] - p[:, 1]) * (
                r[:, 0] - p[:, 0]
            )

        o1, o2, o3, o4 = cross(a, b, c), cross(a, b, d), cross(c, d, a), cross(c, d, b)
        straddle = (o1 * o2 <= 0) & (o3 * o4 <= 0)
        collinear = (o1 == 0) & (o2 == 0)
        overlap = np.all(
            np.maximum(np.minimum(a, b), np.minimum(c, d))
            <= np.minimum(np.maximum(a, b), np.maximum(c, d)),
            axis=1,
        )
        bad = straddle & (~collinear | overlap)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise ValueError(f"Polygon: not simple, edge{i[k]} meets edge{j[k]}")

    def contains(self, x: np.ndarray, tol: float | None = None) -> np.ndarray:
        x = self._as_points(x)
        tol = _default_tol(self) if tol is None else tol
        out = np.empty(len(x), dtype=bool)
        step = max(1, 2_000_000 // len(self.vertices))  # bound the (points x edges) temporaries
        for s in range(0, len(x), step):
            out[s : s + step] = self._contains_block(x[s : s + step], tol)
        return out

    def _contains_block(self, x: np.ndarray, tol: float) -> np.ndarray:
        a = self.vertices
        b = np.roll(a, -1, axis=0)
        e = b - a
        px, py = x[:, :1], x[:, 1:2]
        ax, ay, ex, ey = a[:, 0], a[:, 1], e[:, 0], e[:, 1]
        # the end's own y, not ay + ey: their round-off differs, and a point level with a
        # vertex would see one edge straddle it twice or never
        straddle = (ay > py) != (b[:, 1] > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            xcross = ax + (py - ay) * ex / ey
        inside = np.count_nonzero(straddle & (px < xcross), axis=1) % 2 == 1
        t = np.clip(((px - ax) * ex + (py - ay) * ey) / (ex**2 + ey**2), 0.0, 1.0)
        dist = np.hypot(px - ax - t * ex, py - ay - t * ey).min(axis=1)
        return inside | (dist <= tol) if tol >= 0 else inside & (dist > -tol)

    @property
    def measure(self) -> float:
        return self._area

    def _make_pieces(self) -> list[_Piece]:
        v, m = self.vertices, len(self.vertices)
        pieces = []
        for i in range(m):
            a, b = v[i], v[(i + 1) % m]
            length = float(np.hypot(*(b - a)))
            ex, ey = (b - a) / length
            # counter-clockwise polygons have the interior on the left of each edge
            normal = np.array([ey, -ex]) if self._ccw else np.array([-ey, ex])
            pieces.append(
                _Piece(f"edge{i}", (), length, (length,), (False,), self._edge(a, b, normal))
            )
        return pieces

    @staticmethod
    def _edge(a: np.ndarray, b: np.ndarray, normal: np.ndarray):
        def param(u):
            return _lerp(a, b, u[:, :1]), np.tile(normal, (len(u), 1))

        return param

    def __repr__(self) -> str:
        verts = ", ".join(_vec(p) for p in self.vertices)
        extra = "" if self.names == ("x", "y") else f", names={self.names!r}"
        return f"Polygon([{verts}]{extra})"


# ----------------------------------------------------------------------------- CSG


class CSG(Domain):
    """Regularised Boolean combination of two steady domains of equal dimension.

    Built with ``A - B`` (difference), ``A | B`` (union), ``A & B``
    (intersection).  Membership is that of the regularised closed set (closure of
    the interior): ``A - B`` keeps the boundary of ``B`` inside ``A`` but not
    lower-dimensional "hairs" such as parts of A's boundary lying on B's
    boundary (detected by probing 16 directions in 2-D, so wedges thinner than
    22.5 degrees may lose their tip).  The area/volume is a Monte-Carlo
    estimate (2**16 Sobol' points).

    Boundary: the pieces of all primitive operands ("leaves", numbered 0, 1, ...
    left to right in the expression), each restricted to where it bounds the
    result.  A point p of a leaf piece with normal n is kept if membership of
    the result differs at p - eps*n and p + eps*n; the outward normal is n or -n
    accordingly (so holes get normals pointing into the hole).  Where two leaves
    share a boundary, the earlier leaf owns it.  Pieces that do not survive are
    dropped.

    Piece names: a leaf piece keeps its name (and aliases) unless a surviving
    piece of an earlier leaf already uses it; then it is called
    ``"op<i>.<name>"``.  Every piece also accepts ``"op<i>.<name>"`` as an alias,
    and ``"op<i>"`` selects all pieces of leaf i.  E.g.
    ``Rectangle(...) - Disk(...) - Disk(...)`` has pieces
    ``left, right, bottom, top, circle, op2.circle``; the holes are also
    ``op1.circle`` / ``op1`` and ``op2.circle`` / ``op2``.
    """

    _SYMBOL = {"-": "difference", "|": "union", "&": "intersection"}

    def __init__(self, op: str, a: Domain, b: Domain) -> None:
        if op not in self._SYMBOL:
            raise ValueError(f"CSG: unknown operation {op!r}; use '-', '|' or '&'")
        for d in (a, b):
            if d.time_axis is not None:
                raise ValueError(
                    f"CSG: {d!r} has a time axis; combine spatial domains first, "
                    "then multiply by Time"
                )
        if a.dim != b.dim or a.names != b.names:
            raise ValueError(
                f"CSG: operands must share dimension and axis names, got {a.names} and {b.names}"
            )
        self.op, self.a, self.b = op, a, b
        if op == "-":
            lo, hi = a._lo, a._hi
        elif op == "|":
            lo, hi = np.minimum(a._lo, b._lo), np.maximum(a._hi, b._hi)
        else:
            lo, hi = np.maximum(a._lo, b._lo), np.minimum(a._hi, b._hi)
            if np.any(lo >= hi):
                raise ValueError(f"CSG: intersection of {a!r} and {b!r} is empty")
        self._setup(lo, hi, a.names)

    def contains(self, x: np.ndarray, tol: float | None = None) -> np.ndarray:
        x = self._as_points(x)
        tol = _default_tol(self) if tol is None else tol
        if tol < 0:
            return self._pointwise(x, tol)
        strict = self._pointwise(x, -tol)
        maybe = self._pointwise(x, tol) & ~strict
        if maybe.any():
            # Pointwise Boolean tests keep "hairs": e.g. for A - B, the part of A's
            # boundary lying on B's boundary has no interior nearby.  A point on
            # the regularised boundary has strictly interior points close by, so
            # probe a few directions at a distance just beyond the tolerance.
            xm = x[maybe]
            delta = max(4.0 * tol, 1e-9 * float(np.linalg.norm(self._hi - self._lo)))
            ok = np.zeros(len(xm), dtype=bool)
            for direction in self._probe_directions:
                ok |= self._pointwise(xm + delta * direction, -tol)
            strict[np.flatnonzero(maybe)[ok]] = True
        return strict

    def _pointwise(self, x: np.ndarray, tol: float) -> np.ndarray:
        in_a = self.a.contains(x, tol)
        if self.op == "-":
            return in_a & ~self.b.contains(x, -tol)
        if self.op == "|":
            return in_a | self.b.contains(x, tol)
        return in_a & self.b.contains(x, tol)

    @cached_property
    def _probe_directions(self) -> np.ndarray:
        d = self.dim
        if d == 2:  # 16 directions: wedges down to 22.5 degrees are detected
            th = np.arange(16) * np.pi / 8
            return np.stack([np.cos(th), np.sin(th)], axis=1)
        dirs = list(np.eye(d)) + list(-np.eye(d))
        if d <= 4:
            dirs += [np.array(c) / np.sqrt(d) for c in itertools.product((-1, 1), repeat=d)]
        return np.array(dirs)

    @cached_property
    def measure(self) -> float:
        engine = _qmc_engine(qmc.Sobol, self.dim, np.random.default_rng(7))
        x = _lerp(self._lo, self._hi, engine.random_base2(_MEASURE_LOG2))
        return float(np.mean(self.contains(x)) * np.prod(self._hi - self._lo))

    def _leaves(self) -> list[Domain]:
        return self.a._leaves() + self.b._leaves()

    def _make_pieces(self) -> list[_Piece]:
        leaves = self._leaves()
        eps = 1e-8 * float(np.linalg.norm(self._hi - self._lo))
        ktol = -1e-2 * eps  # strict interior tests, so boundary "hairs" never count
        survivors = []
        for li, leaf in enumerate(leaves):
            for p in leaf._pieces:
                piece = replace(p, keep=self._keeper(leaves[:li], eps, ktol))
                _, _, mask = piece.map(_probe_params(piece.k))
                if mask.any():
                    survivors.append((li, replace(piece, fraction=float(mask.mean()))))
        used: set[str] = set()
        out = []
        for li, p in survivors:
            tag = f"op{li}."
            name = p.name if p.name not in used else tag + p.name
            # bare aliases when free, else prefixed; the prefixed name always works
            aliases = [s if s not in used else tag + s for s in p.aliases]
            aliases = [s for s in dict.fromkeys([*aliases, tag + p.name]) if s != name]
            used.update((p.name, *p.aliases))
            out.append(replace(p, name=name, aliases=tuple(aliases), groups=(f"op{li}",)))
        return out

    def _keeper(self, earlier: list[Domain], eps: float, ktol: float):
        def keep(x: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            inner = self.contains(x - eps * n, ktol)
            outer = self.contains(x + eps * n, ktol)
            mask = inner != outer
            # an earlier leaf with the same interface already supplies these points
            for leaf in earlier:
                mask &= leaf.contains(x - eps * n, ktol) == leaf.contains(x + eps * n, ktol)
            return mask, np.where(inner[:, None], n, -n)

        return keep

    def __repr__(self) -> str:
        return f"({self.a!r} {self.op} {self.b!r})"


# ----------------------------------------------------------------------------- space-time


class SpaceTime(Domain):
    """Product ``space x [t0, t1]`` of a steady domain and a :class:`Time`.

    Usually built as ``space * Time(t0, t1)``.  Names are ``space.names + (t,)``
    and ``time_axis`` is the last column.  :meth:`boundary` samples the lateral
    boundary (spatial boundary x [t0, t1]) with the spatial piece names and
    normals (time component 0); the initial slice is not a boundary piece, use
    :meth:`initial`.
    """

    def __init__(self, space: Domain, time: Time) -> None:
        if not isinstance(time, Time):
            raise ValueError(f"SpaceTime: expected a Time domain, got {time!r}")
        if space.time_axis is not None:
            raise ValueError(f"SpaceTime: {space!r} already has a time axis")
        if time.names[0] in space.names:
            raise ValueError(f"SpaceTime: time name {time.names[0]!r} clashes with {space.names}")
        self.space, self.time = space, time
        self._setup(
            np.append(space._lo, time.t0),
            np.append(space._hi, time.t1),
            space.names + time.names,
            time_axis=space.dim,
        )
        self._exact_map = space._exact_map

    def contains(self, x: np.ndarray, tol: float | None = None) -> np.ndarray:
        x = self._as_points(x)
        tol = _default_tol(self) if tol is None else tol
        t = x[:, -1]
        in_time = (t >= self.time.t0 - tol) & (t <= self.time.t1 + tol)
        return in_time & self.space.contains(x[:, :-1], tol)

    @property
    def measure(self) -> float:
        return self.space.measure * (self.time.t1 - self.time.t0)

    def _from_unit(self, u: np.ndarray) -> np.ndarray:
        t = _lerp(self.time.t0, self.time.t1, u[:, -1:])
        return np.hstack([self.space._from_unit(u[:, :-1]), t])

    def _accepts(self, x: np.ndarray) -> np.ndarray:
        return self.space._accepts(x[:, :-1])

    def _make_pieces(self) -> list[_Piece]:
        return [self._lift(p) for p in self.space._pieces]

    def _lift(self, p: _Piece) -> _Piece:
        t0, t1 = self.time.t0, self.time.t1

        def param(u):
            x, nrm = p.param(u[:, :-1])
            t = _lerp(t0, t1, u[:, -1:])
            return np.hstack([x, t]), np.hstack([nrm, np.zeros_like(t)])

        keep = None
        if p.keep is not None:

            def keep(x, nrm):
                mask, nr = p.keep(x[:, :-1], nrm[:, :-1])
                return mask, np.hstack([nr, np.zeros((len(nr), 1))])

        return replace(
            p,
            measure=p.measure * (t1 - t0),
            extents=p.extents + (t1 - t0,),
            periodic=p.periodic + (False,),
            param=param,
            keep=keep,
        )

    def initial(self, n: int, method: str = "sobol", seed: int | None = 0) -> np.ndarray:
        """Points of the spatial domain at t = t0, shape (n, dim) (``"grid"``:
        the spatial interior grid, see :meth:`Domain.sample`)."""
        n = _check_n(n)
        _check_method(method)
        _check_seed(seed)
        x = self.space._interior(n, method, seed, key=(2,))
        return np.hstack([x, np.full((len(x), 1), self.time.t0)])

    def __repr__(self) -> str:
        return f"{self.space!r} * {self.time!r}"

"""Kolmogorov–Arnold network layers and networks.

A layer with ``n_in`` inputs and ``n_out`` outputs has one learnable univariate function per
edge, ``φ_{oi}(x) = w_b·silu(x) + w_s·Σ_b c_{oib} B_b(x)``, and each output sums its incoming
edges: ``y_o = Σ_i φ_{oi}(x_i)``.
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from . import fixed_points
from .bases import Basis, BSpline, _uniform_points, get_basis, silu_features
from .fixed_points import OperatorCache, build_operator, coordinate_jet
from .jet import Inner, Jet, Pairs, chain, check_order, first_layer, normalize_pairs, public
from .one_output import one_output_jet

SPLINE = "spline"  # edge kind of a basis-expanded edge; "" is a removed edge, else a function


def _ranges(grid_range, n_in: int, dtype, device) -> Tensor:
    r = torch.as_tensor(grid_range, dtype=dtype, device=device)
    if r.shape == (2,):
        r = r.expand(n_in, 2)
    if (
        r.shape != (n_in, 2)
        or not bool(torch.isfinite(r).all())
        or not bool((r[:, 1] > r[:, 0]).all())
    ):
        raise ValueError(
            "grid_range must be finite (lo, hi) with lo < hi, or one such pair per input "
            f"({n_in}); "
            f"got {grid_range!r}"
        )
    return r.clone()


def _whole(v) -> bool:
    """An integer, or a float that is one (1e3); not a bool."""
    if isinstance(v, bool):
        return False
    return isinstance(v, numbers.Integral) or (isinstance(v, float) and v.is_integer())


def check_inputs(x, dtype: torch.dtype, what: str) -> None:
    """One line for inputs a network cannot take: not a tensor, or of another dtype."""
    if not isinstance(x, Tensor):
        raise TypeError(
            f"{what} expects a torch tensor, got {type(x).__name__}; convert it with "
            f"torch.as_tensor(x, dtype={dtype}) (or use kanpde.Run.predict)"
        )
    if x.dtype != dtype:
        raise TypeError(
            f"{what} of dtype {dtype} got inputs of dtype {x.dtype}; convert them with "
            f"x.to({dtype})"
        )


def check_width(width: Sequence[int]) -> list[int]:
    """Layer widths as a list of ints; at least two positive sizes."""
    if hasattr(width, "tolist") and not isinstance(width, str | bytes):  # numpy, torch
        width = width.tolist()
    if isinstance(width, str | bytes) or not isinstance(width, Sequence):
        raise ValueError(f"width must be a list of layer sizes such as [2, 10, 1], got {width!r}")
    if not all(_whole(w) for w in width):
        raise ValueError(f"width must list whole numbers, got {list(width)}")
    if len(width) < 2 or min(width) < 1:
        raise ValueError(f"width must list at least two positive layer sizes, got {list(width)}")
    return [int(w) for w in width]


class KANLayer(nn.Module):
    """One KAN layer.

    Parameters
    ----------
    in_features, out_features : int
        Number of inputs and outputs.
    grid : int
        Number of grid intervals ``G``.
    k : int
        Spline order (degree) for the B-spline basis; ignored by other bases.
    grid_range : (float, float) or sequence of them
        Interval covered by the grid, one for all inputs or one per input.
    basis : str or Basis
        ``"bspline"`` (default), ``"rbf"`` (FastKAN), ``"rswaf"`` (FasterKAN) or ``"chebyshev"``.
    grid_eps : float
        Mix of uniform (1) and sample-quantile (0) knots used by :meth:`update_grid`.
    init_scale : float
        Standard deviation of the initial coefficients ``c``.
    bias : bool
        Add a learnable bias to every output.
    dtype, device : optional
        Of the parameters and buffers (torch's defaults when omitted).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        grid: int = 5,
        k: int = 3,
        grid_range: tuple[float, float] | Sequence[tuple[float, float]] = (-1.0, 1.0),
        basis: str | Basis = "bspline",
        grid_eps: float = 0.02,
        init_scale: float = 0.1,
        bias: bool = False,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        if not (_whole(in_features) and _whole(out_features)) or min(in_features, out_features) < 1:
            raise ValueError(f"layer sizes must be positive, got {in_features} -> {out_features}")
        if not _whole(grid) or grid < 1:
            raise ValueError(f"grid must be a positive number of intervals, got {grid!r}")
        if not _whole(k) or k < 1:
            raise ValueError(f"spline order k must be an integer >= 1, got {k!r}")
        ok = isinstance(grid_eps, numbers.Real) and not isinstance(grid_eps, bool)
        if not ok or not 0 <= grid_eps <= 1:
            raise ValueError(
                f"grid_eps must be in [0, 1] (0: knots at quantiles, 1: uniform), got {grid_eps!r}"
            )
        ok = isinstance(init_scale, numbers.Real) and not isinstance(init_scale, bool)
        if not ok or not math.isfinite(init_scale) or init_scale < 0:
            raise ValueError(f"init_scale must be a non-negative number, got {init_scale!r}")
        if not isinstance(bias, bool):
            raise ValueError(f"bias must be True or False, got {bias!r}")
        in_features, out_features, grid, k = int(in_features), int(out_features), int(grid), int(k)
        dtype = dtype or torch.get_default_dtype()
        self.in_features, self.out_features, self.k = in_features, out_features, k
        self.basis = get_basis(basis)
        self.grid_eps = grid_eps
        ranges = _ranges(grid_range, in_features, dtype, device)
        self.register_buffer("grid_points", self.basis.make_grid(_uniform_points(ranges, grid), k))
        self._prepare()
        nb = self.basis.size(grid, k)
        device = torch.get_default_device() if device is None else device
        factory = {"dtype": dtype, "device": device}
        # Drawn on the CPU in float64 and then moved: a seed gives the same model in float32
        # and float64, on the CPU and on a GPU (each has its own generator and draws).
        host = {"dtype": torch.float64, "device": "cpu"}
        coef = torch.randn(out_features, in_features, nb, **host) * init_scale
        self.coef = nn.Parameter(coef.to(**factory))
        bound = 1 / math.sqrt(in_features)
        scale_base = (torch.rand(out_features, in_features, **host) * 2 - 1) * bound
        self.scale_base = nn.Parameter(scale_base.to(**factory))
        self.scale_spline = nn.Parameter(torch.full((out_features, in_features), bound, **factory))
        self.bias = nn.Parameter(torch.zeros(out_features, **factory)) if bias else None
        # Pruned or symbolic edges (see set_edges); the plain layer keeps the original fast path.
        self._plain = True
        self.register_buffer("edge_index", None, persistent=False)
        self.add_module("symbolic", None)

    # -- grid bookkeeping ---------------------------------------------------------------------
    def _prepare(self) -> None:
        """Recompute the tensors the basis derives from the grid (not saved in state dicts)."""
        self._aux_names = []
        self._point_ops = OperatorCache()  # a first-layer operator depends on the grid too
        # Normal tensors even when called under inference mode (e.g. load_state_dict there):
        # inference tensors could not be saved for a later backward.
        with torch.inference_mode(False):
            aux = self.basis.prepare(self.grid_points, self.k)
        for name, value in aux.items():
            self.register_buffer("_aux_" + name, value, persistent=False)
            self._aux_names.append(name)

    @property
    def _aux(self) -> dict[str, Tensor]:
        return {n: getattr(self, "_aux_" + n) for n in self._aux_names}

    @property
    def grid(self) -> int:
        """Current number of grid intervals ``G``."""
        return self.basis.grid_size(self.grid_points, self.k)

    @property
    def grid_range(self) -> Tensor:
        """``(n_in, 2)`` interval covered by the grid of each input."""
        return self.basis.domain(self.grid_points, self.k)

    def _apply(self, fn, recurse=True):
        out = super()._apply(fn, recurse)
        self._prepare()  # keep derived tables in the buffers' dtype and device
        return out

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + "grid_points"
        if key in state_dict and state_dict[key].shape != self.grid_points.shape:
            # A checkpoint taken after grid extension: adopt its grid size before loading.
            with torch.inference_mode(False):  # trainable afterwards even if loaded there
                self.grid_points = torch.empty_like(
                    state_dict[key], dtype=self.grid_points.dtype, device=self.grid_points.device
                )
                nb = self.basis.size(self.basis.grid_size(state_dict[key], self.k), self.k)
                self.coef = nn.Parameter(self.coef.new_empty(*self.coef.shape[:2], nb))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._prepare()

    # -- evaluation ---------------------------------------------------------------------------
    def _check(self, x: Tensor) -> None:
        check_inputs(x, self.coef.dtype, "KAN")
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(
                f"KANLayer expects inputs of shape (N, {self.in_features}), got {tuple(x.shape)}"
            )

    def _edges(self, h: Tensor, order: int) -> tuple[Tensor, ...]:
        """Feature-major edges: ``(n_in, N)`` → ``order + 1`` tensors ``(n_out, n_in, N)``."""
        if not self._plain:
            return self._edited_edges(h, order)
        return self.basis.edges(
            h,
            self.coef,
            self.scale_base,
            self.scale_spline,
            self.grid_points,
            self.k,
            self._aux,
            order,
        )

    def _edited_edges(self, h: Tensor, order: int) -> tuple[Tensor, ...]:
        """:meth:`_edges` of a layer with removed or symbolic edges: removed edges are exactly
        zero, symbolic edges come from :attr:`symbolic` with their exact derivatives."""
        n_out, n_in = self.out_features, self.in_features
        if self.edge_index.numel():
            coef, scale_base, scale_spline = self.dense_parameters()
            phi = self.basis.edges(
                h, coef, scale_base, scale_spline, self.grid_points, self.k, self._aux, order
            )
        else:  # no spline edges left: skip the basis altogether
            phi = (h.new_zeros(n_out, n_in, h.shape[1]),) * (order + 1)
        if self.symbolic is not None:
            flat = self.symbolic.flat
            phi = tuple(
                p.reshape(n_out * n_in, -1).index_add(0, flat, v).view(n_out, n_in, -1)
                for p, v in zip(phi, self.symbolic(h, order))
            )
        return phi

    def _spline_edges(self, h: Tensor, order: int) -> list[Tensor]:
        """The spline part of the edges of a plain layer (no removed or symbolic edges)."""
        return self.basis.spline_edges(
            h, self.coef, self.scale_spline, self.grid_points, self.k, self._aux, order
        )

    def _forward(self, h: Tensor) -> Tensor:
        """Feature-major forward: ``(n_in, N)`` → ``(n_out, N)``."""
        if self._plain:
            # the silu part of all edges is one matrix product
            spline = self._spline_edges(h, 0)[0]
            y = torch.addmm(spline.sum(1), self.scale_base, torch.nn.functional.silu(h))
        else:
            y = self._edges(h, 0)[0].sum(1)
        return y if self.bias is None else y + self.bias.unsqueeze(1)

    def _fixed_points(self, points: Tensor | None) -> bool:
        """Evaluate a first layer at ``points`` by the sparse operator of
        :mod:`kanpde.nn.fixed_points` (CPU, plain B-spline layer, points without gradient)."""
        return (
            points is not None
            and self._plain
            and isinstance(self.basis, BSpline)
            and points.device.type == "cpu"
            and not points.requires_grad
            and not points.is_inference()  # no version counter to key the cache on
            and 0 < points.numel() <= fixed_points.MAX_COORDINATES
            and not torch.compiler.is_compiling()
        )

    def _coordinate_jet(
        self, points: Tensor, h: Tensor, order: int, pairs: Pairs, pack: bool = False
    ) -> Inner | Tensor:
        def build():
            return build_operator(h, self.basis, self.grid_points, self.k, self._aux, order, pairs)

        op = self._point_ops.get(points, order, pairs, build)
        table = self.basis.table(self.coef, self.scale_spline, self.k, self._aux)
        out = coordinate_jet(op, table, self.scale_base, contiguous=not pack)  # (blocks, n_out, N)
        if pack:
            return out
        d = h.shape[0]
        sizes = [1, d, len(pairs)][: order + 1]
        # split, not indexing: its backward is one concatenation instead of zero-filled copies
        parts = out.split(sizes)
        d1 = parts[1] if order >= 1 else None
        d2 = parts[2] if order >= 2 else None
        return parts[0].squeeze(0), d1, d2

    def _one_output(self, order: int, device: torch.device) -> bool:
        """Whether :meth:`_jet` propagates a jet by the single Function of
        :mod:`kanpde.nn.one_output` (a plain B-spline layer with one output, on the CPU,
        outside compilation)."""
        return (
            self.out_features == 1
            and self._plain
            and isinstance(self.basis, BSpline)
            and order in (1, 2)
            and device.type == "cpu"
            and not torch.compiler.is_compiling()
        )

    def _jet(
        self,
        inner: Inner | Tensor | None,
        h: Tensor,
        order: int,
        pairs: Pairs,
        points: Tensor | None = None,
        pack: bool = False,
    ) -> Inner | Tensor:
        """Feature-major jet propagation; ``inner=None`` means ``h`` are the coordinates
        (``points``: the same as an ``(N, D)`` tensor that may be met again, for reuse).

        With ``pack`` a first layer served by the sparse operator returns its jet as one
        ``(1 + D + P, n_out, N)`` tensor in the operator's points-first memory, which a
        one-output layer takes as ``inner`` without a transposing copy or, in the backward, a
        concatenation.
        """
        if isinstance(inner, Tensor):
            h = inner[0]
        if inner is None and self._fixed_points(points):
            packed = self._coordinate_jet(points, h, order, pairs, pack and self.bias is None)
            if isinstance(packed, Tensor):
                return packed
            value, d1, d2 = packed
        elif inner is not None and self._one_output(order, h.device):
            aux = self._aux
            flat = self.basis.slots(h, self.grid_points, aux)
            table = self.basis.table(self.coef, self.scale_spline, self.k, aux)
            value, d1, d2 = one_output_jet(
                inner, table, self.scale_base, aux["left"], flat, pairs, order
            )
        elif isinstance(inner, Tensor):
            raise TypeError("a packed jet is meant for a one-output layer")
        elif inner is not None and self._plain and self.out_features > 1:
            # Hidden layers: the silu part of every edge enters by matrix products, which
            # saves three broadcast passes over (n_out, n_in, N) and their backward. (With
            # one output, adding it per edge is cheaper than the products with the jets.)
            spline = self._spline_edges(h, order)
            base = (self.scale_base, silu_features(h, order))
            value, d1, d2 = chain(spline, inner, pairs, base)
        else:
            phi = self._edges(h, order)
            value, d1, d2 = first_layer(phi, pairs) if inner is None else chain(phi, inner, pairs)
        if self.bias is not None:
            value = value + self.bias.unsqueeze(1)
        return value, d1, d2

    def edges(self, x: Tensor, order: int = 0) -> tuple[Tensor, ...]:
        """Edge functions and their derivatives up to ``order`` at inputs ``(N, n_in)``.

        Returns ``order + 1`` tensors ``(N, n_in, n_out)``: ``φ_{oi}^{(q)}(x_i)``.
        """
        self._check(x)
        check_order(order, "edges: order")
        return tuple(p.permute(2, 1, 0) for p in self._edges(x.t(), order))

    def forward(self, x: Tensor) -> Tensor:
        """``(N, n_in)`` → ``(N, n_out)``."""
        self._check(x)
        return self._forward(x.t()).t()

    def basis_values(self, x: Tensor, order: int = 0) -> Tensor:
        """Dense basis functions ``(N, n_in, order + 1, nb)`` (for fitting, tests and plots).

        B-splines give derivatives of any order, the other bases up to the second.
        """
        self._check(x)
        top = self.basis.max_order
        if isinstance(order, bool) or not isinstance(order, int) or order < 0:
            raise ValueError(f"basis_values: order must be an integer >= 0, got {order!r}")
        if top is not None and order > top:
            raise ValueError(
                f"basis_values: order {order} is more than the {self.basis.name} basis gives "
                f"(derivatives up to order {top})"
            )
        feats = self.basis.features(x.t(), self.grid_points, self.k, self._aux, order)
        return feats.permute(2, 1, 0, 3)

    def spline(self, x: Tensor) -> Tensor:
        """The spline part ``Σ_b c_{oib} B_b(x_i)`` of every edge, ``(N, n_in, n_out)``."""
        coef = self.dense_parameters()[0]
        return torch.einsum("nib,oib->nio", self.basis_values(x)[:, :, 0], coef)

    # -- removed and symbolic edges -----------------------------------------------------------
    def spline_mask(self) -> Tensor:
        """``(n_out, n_in)`` bool: which edges are basis-expanded (spline) edges."""
        n = self.out_features * self.in_features
        mask = torch.ones(n, dtype=torch.bool, device=self.coef.device)
        if not self._plain:
            mask = torch.zeros_like(mask).index_fill_(0, self.edge_index, True)
        return mask.view(self.out_features, self.in_features)

    def dense_parameters(self) -> tuple[Tensor, Tensor, Tensor]:
        """``coef`` ``(n_out, n_in, nb)``, ``scale_base`` and ``scale_spline`` ``(n_out, n_in)``.

        A layer with removed or symbolic edges stores the parameters of its spline edges only
        (packed: ``coef`` is ``(1, n_spline, nb)``, the scales ``(1, n_spline)``, in the order
        of :attr:`edge_index`, the flat indices ``o · n_in + i`` of its spline edges), so that
        removed edges have no parameters; this returns them scattered onto every edge, zero on
        the others (differentiably).
        """
        if self._plain:
            return self.coef, self.scale_base, self.scale_spline
        n_out, n_in, idx = self.out_features, self.in_features, self.edge_index

        def dense(packed: Tensor) -> Tensor:
            flat = packed[0]
            full = flat.new_zeros(n_out * n_in, *flat.shape[1:]).index_copy(0, idx, flat)
            return full.view(n_out, n_in, *flat.shape[1:])

        return dense(self.coef), dense(self.scale_base), dense(self.scale_spline)

    def edge_kinds(self) -> list[list[str]]:
        """``n_out`` rows of ``n_in`` edge kinds: ``"spline"``, ``""`` (removed) or the name of
        a symbolic function (see :mod:`kanpde.symbolic`)."""
        mask = self.spline_mask().tolist()
        kinds = [[SPLINE if m else "" for m in row] for row in mask]
        if self.symbolic is not None:
            for (o, i), name in zip(self.symbolic.edges, self.symbolic.names):
                kinds[o][i] = name
        return kinds

    @torch.no_grad()
    def set_edges(self, kinds: Sequence[Sequence[str]]) -> None:
        """Declare the kind of every edge (``n_out`` rows of ``n_in`` kinds, as
        :meth:`edge_kinds`).

        Edges that keep their kind keep their parameters; an edge that becomes a spline edge
        starts as the zero function (zero coefficients and base weight, the constructor's
        spline scale ``1/√n_in``, so that it can learn), a new symbolic edge as ``f(x)``
        (affine parameters ``a = c = 1``, ``b = d = 0``). Parameter tensors are replaced:
        rebuild optimizers.

        Parameters
        ----------
        kinds : sequence of sequence of str
            ``n_out`` rows of ``n_in`` kinds: ``"spline"``, ``""`` (removed) or the name of a
            function of the symbolic library (see :func:`kanpde.symbolic.add_function`).

        Raises
        ------
        ValueError
            If ``kinds`` is not ``n_out`` rows of ``n_in`` strings, or names a function the
            library does not know.
        """
        kinds = [list(row) for row in kinds]
        if len(kinds) != self.out_features or any(len(r) != self.in_features for r in kinds):
            raise ValueError(
                f"edge kinds must be {self.out_features} rows of {self.in_features}, got "
                f"{[len(r) for r in kinds]}"
            )
        if any(not isinstance(k, str) for row in kinds for k in row):
            raise ValueError("edge kinds must be strings: 'spline', '' (removed) or a function")
        coef, scale_base, scale_spline = (t.detach().clone() for t in self.dense_parameters())
        grad = self.coef.requires_grad
        spline = torch.tensor([[k == SPLINE for k in row] for row in kinds], device=coef.device)
        new = spline & ~self.spline_mask()
        # With coef = scale_spline = 0 each would be the other's zero gradient factor forever.
        coef[new], scale_base[new] = 0.0, 0.0
        scale_spline[new] = 1 / math.sqrt(self.in_features)
        entries = [(o, i, k) for o, row in enumerate(kinds) for i, k in enumerate(row)]
        entries = [(o, i, k) for o, i, k in entries if k not in (SPLINE, "")]
        old = self.symbolic
        if entries:
            from ..symbolic import SymbolicEdges  # the function library lives there

            self.symbolic = SymbolicEdges(entries, self.in_features, like=coef, previous=old)
        else:
            self.symbolic = None
        self._plain = bool(spline.all()) and not entries
        if self._plain:
            self.edge_index = None
        else:
            self.edge_index = spline.flatten().nonzero().flatten()
            flat = self.edge_index
            coef = coef.flatten(0, 1)[flat].unsqueeze(0)
            scale_base = scale_base.flatten()[flat].unsqueeze(0)
            scale_spline = scale_spline.flatten()[flat].unsqueeze(0)
        self.coef = nn.Parameter(coef, requires_grad=grad)
        self.scale_base = nn.Parameter(scale_base, requires_grad=grad)
        self.scale_spline = nn.Parameter(scale_spline, requires_grad=grad)

    # -- grid changes -------------------------------------------------------------------------
    @torch.no_grad()
    def set_grid(self, points: Tensor, x: Tensor) -> Tensor:
        """Move to a new grid and refit ``c`` by least squares on the samples ``x``.

        Parameters
        ----------
        points : Tensor
            ``(n_in, G' + 1)`` strictly increasing grid points (the grid range and interior
            knots), distinct in the layer's dtype.
        x : Tensor
            ``(S, n_in)`` samples on which the edge functions are preserved.

        Returns
        -------
        Tensor
            ``(n_in, nb', nb)`` transfer matrices ``R`` with ``c'[o, i] = R[i] @ c[o, i]``;
            apply them to anything that lives on the coefficients (e.g. optimizer moments).
            With packed coefficients ``(1, n_spline, nb)`` (see :meth:`dense_parameters`) it
            is one matrix per spline edge, ``(n_spline, nb', nb)``, so the same formula holds.
        """
        if points.ndim != 2 or points.shape[0] != self.in_features or points.shape[1] < 2:
            raise ValueError(
                f"set_grid needs (n_in={self.in_features}, G + 1 ≥ 2) grid points, "
                f"got {tuple(points.shape)}"
            )
        points = points.to(self.grid_points)
        if not bool((points.diff(dim=1) > 0).all()):
            # a zero-width knot interval makes the spline table, and every gradient, NaN
            raise ValueError(
                f"set_grid needs strictly increasing grid points in {self.grid_points.dtype} "
                "(some coincide or decrease)"
            )
        x = self._fit_samples(x, points)
        old = self.basis_values(x)[:, :, 0].transpose(0, 1)  # (n_in, S, nb)
        self.grid_points = self.basis.make_grid(points, self.k)
        self._prepare()
        new = self.basis_values(x)[:, :, 0].transpose(0, 1)  # (n_in, S, nb')
        # Least squares in float64 on the CPU: 'gelsd' gives the minimum-norm solution when a
        # basis function has no samples in its support (e.g. knots beyond a hidden layer's range).
        transfer = torch.linalg.lstsq(
            new.detach().cpu().double(), old.detach().cpu().double(), driver="gelsd"
        ).solution.to(self.coef)
        if not self._plain:
            transfer = transfer[self.edge_index % self.in_features]
        # contiguous like every other parameter: fused Adam needs a parameter, its gradient
        # and its moments laid out alike, and gradients are made contiguous for L-BFGS
        coef = torch.einsum("ipb,oib->oip", transfer, self.coef).contiguous()
        self.coef = nn.Parameter(coef, requires_grad=self.coef.requires_grad)
        return transfer

    def _fit_samples(self, x: Tensor, points: Tensor, per_interval: int = 8) -> Tensor:
        """The samples plus a dense uniform sweep of each input over the new grid's range.

        Each edge is a function of one input, so the sweep pins the fit down between the
        samples: a refinement is then exact on the whole grid range, not only at the samples
        (few distinct sample coordinates would otherwise leave it underdetermined). Samples
        outside the range keep their say, but no sweep points are added there, where the new
        spline space cannot follow the old function anyway.
        """
        lo, hi = points[:, 0], points[:, -1]
        n = per_interval * (max(self.grid, points.shape[1] - 1) + 2 * self.k + 1)
        t = torch.linspace(0, 1, n, dtype=x.dtype, device=x.device).unsqueeze(1)
        return torch.cat([x, lo + (hi - lo) * t])

    def extend_grid(self, new_grid: int, x: Tensor) -> Tensor:
        """Change to ``new_grid`` uniform intervals over the grid range (see :meth:`set_grid`).

        For B-splines the range is first widened to cover the samples: the ``k`` knots beyond
        each end sit one new interval apart, so refining shrinks the support outside the range,
        and samples there (a hidden layer's inputs often spill over) would lose their spline
        part. Measured on a trained [2, 10, 10, 1] KAN with 0.2 % of a hidden layer's inputs
        outside its range, 40 → 80 intervals: the output moved by up to 0.15 over the samples
        on the fixed range, 4e-4 on the widened one. Samples inside the range leave it as it is,
        and the refinement stays exact when ``new_grid`` is a multiple of the current size:
        each interval is split into equal parts, so the old knots, uniform or placed by
        :meth:`update_grid`, are among the new ones (the old spline space lies inside the new
        one). An input with knots placed by :meth:`update_grid` whose range was widened gets,
        of two candidates, the one that changes its edges less on the samples: those split
        knots with the end knot moved out to the samples (after a small spill, as inputs drift
        past an updated grid, the output moved by 1e-5 instead of 6e-3 on a trained [1, 5, 2]
        system) or uniform knots (a spill over several intervals). Uniform grids widened,
        other sizes and coarsening get uniform knots; every change ends in the least-squares
        fit on the samples.
        """
        if int(new_grid) < 1:
            raise ValueError(f"extend_grid needs new_grid ≥ 1, got {new_grid}")
        ranges = self.grid_range
        if self.basis.local and x.numel():
            x = x.detach().to(ranges)
            ranges = torch.stack(
                [
                    torch.minimum(ranges[:, 0], x.min(0).values),
                    torch.maximum(ranges[:, 1], x.max(0).values),
                ],
                dim=1,
            )
        g, new_grid = self.grid, int(new_grid)
        points = _uniform_points(ranges, new_grid)
        if self.basis.local and new_grid % g == 0:
            # Per input: one whose samples stay inside its range (past it by rounding only,
            # as update_grid's ends eps·lo + (1-eps)·lo leave them, counts as inside: there the
            # old and new splines continue the same polynomial) has its intervals split.
            old = self.grid_range
            # a few units of rounding in the grid's dtype (float32: 1e-7 of the values)
            tol = 16 * torch.finfo(old.dtype).eps * old.abs().amax(dim=1, keepdim=True)
            inside = ((ranges - old).abs() <= tol).all(dim=1, keepdim=True)
            knots = self.grid_points[:, self.k : self.k + g + 1]  # (n_in, G + 1) on the range
            parts = new_grid // g
            f = torch.arange(parts, dtype=knots.dtype, device=knots.device) / parts
            inner = knots[:, :-1, None] + (knots[:, 1:] - knots[:, :-1])[:, :, None] * f
            split = torch.cat([inner.flatten(1), knots[:, -1:]], dim=1)
            # knots that are exactly uniform keep their uniform formula (the same points up to
            # rounding, and runs reproduce the ones before non-uniform knots were kept)
            uniform = (knots == _uniform_points(old, g)).all(dim=1, keepdim=True)
            points = torch.where(inside & ~uniform, split, points)
            if not bool((inside | uniform).all()):
                # Adapted knots the samples spilled past: uniform knots over the widened range
                # would drop their placement, while the split knots with the end knot moved out
                # to the samples keep every old knot but that end (near-nested), which fits far
                # closer after a small spill; a spill over several intervals is the exception.
                # Per input, the candidate that changes the edges less on the samples wins.
                # (Uniform grids widen uniformly, as they always have.)
                moved = torch.cat([ranges[:, :1], split[:, 1:-1], ranges[:, 1:]], dim=1)
                better = self._refit_change(moved, x) < self._refit_change(points, x)
                points = torch.where(~inside & ~uniform & better[:, None], moved, points)
        return self.set_grid(points, x)

    @torch.no_grad()
    def _refit_change(self, points: Tensor, x: Tensor) -> Tensor:
        """Per input, the largest change of a spline edge (scaled) over the fit samples when
        the layer moves to ``points``, without changing the layer."""
        trial = copy.deepcopy(self)
        trial.set_grid(points, x)
        s = self._fit_samples(x, points)
        scale = self.dense_parameters()[2].abs().t()  # (n_in, n_out)
        return ((trial.spline(s) - self.spline(s)).abs() * scale).amax(dim=(0, 2))

    @torch.no_grad()
    def update_grid(
        self,
        x: Tensor,
        grid_eps: float | None = None,
        margin: float = 0.0,
        keep_constant: bool = False,
    ) -> Tensor:
        """Fit the grid to the samples' range and quantiles, keeping ``G`` (see :meth:`set_grid`).

        The new points are ``grid_eps · uniform + (1 - grid_eps) · quantiles`` of the distinct
        sample values of each input, extended by ``margin`` on both ends. An input whose
        samples have no spread is an error, unless ``keep_constant``: then it gets uniform
        points over its current grid range (a hidden node whose incoming edges were all
        removed or made constant).
        """
        eps = self.grid_eps if grid_eps is None else grid_eps
        g = self.grid
        # Quantiles of each input's distinct values: repeated ones (the boundary points on one
        # face share a coordinate) pulled knots onto them, 6 of 11 within 0.008 of ±1 on a
        # square with 400 boundary and 100 interior points.
        adaptive = []
        for values in x.detach().t():
            v = torch.unique(values)  # sorted
            idx = torch.linspace(0, v.shape[0] - 1, g + 1, device=x.device).round().long()
            adaptive.append(v[idx])
        adaptive = torch.stack(adaptive)  # (n_in, G + 1): first and last are min and max
        lo, hi = adaptive[:, :1] - margin, adaptive[:, -1:] + margin
        flat = ~(hi > lo)
        if bool(flat.any()):
            if not keep_constant:
                raise ValueError("update_grid needs samples with a positive range in every input")
            ranges = self.grid_range.to(adaptive)
            lo, hi = torch.where(flat, ranges[:, :1], lo), torch.where(flat, ranges[:, 1:], hi)
            adaptive = torch.where(flat, _uniform_points(ranges, g), adaptive)
        adaptive = torch.cat([lo, adaptive[:, 1:-1], hi], dim=1)
        uniform = _uniform_points(torch.cat([lo, hi], dim=1), g)
        points = eps * uniform + (1 - eps) * adaptive
        # Quantiles of repeated samples can coincide; keep the knots strictly increasing, by a
        # gap that survives rounding (in float32, 1e-6 of a knot interval can be below half an
        # ulp of the knots: it rounded away, and the zero-width interval made NaN gradients).
        ulps = 64 * torch.finfo(points.dtype).eps * torch.maximum(lo.abs(), hi.abs())
        min_gap = torch.maximum(1e-6 * (hi - lo) / g, ulps)
        points = torch.maximum(points, torch.cummax(points, dim=1).values)
        for j in range(1, g + 1):
            points[:, j] = torch.maximum(points[:, j], points[:, j - 1] + min_gap[:, 0])
        return self.set_grid(points, x)

    def config(self) -> dict:
        """JSON-serialisable constructor arguments (with the current grid; ``edges`` when some
        are removed or symbolic: apply them with :meth:`set_edges`)."""
        cfg = {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "grid": self.grid,
            "k": self.k,
            "basis": self.basis.name,
            "grid_eps": self.grid_eps,
            "bias": self.bias is not None,
        }
        if not self._plain:
            cfg["edges"] = self.edge_kinds()
        return cfg

    def extra_repr(self) -> str:
        return (
            f"{self.in_features} -> {self.out_features}, basis={self.basis.name}, "
            f"grid={self.grid}, k={self.k}"
        )


class KAN(nn.Module):
    """A stack of :class:`KANLayer`.

    Parameters
    ----------
    width : sequence of int
        Layer widths, inputs first, e.g. ``[2, 10, 1]``.
    grid : int
        Number of grid intervals ``G`` of every layer.
    k : int
        Spline order (degree) for the B-spline basis; ignored by other bases.
    grid_range : (float, float)
        Grid interval of the hidden layers (and of the first layer unless ``input_range``).
    input_range : sequence of (float, float), optional
        Grid interval of each input of the first layer, e.g. the domain's bounding box.
    basis : str or Basis
        Basis of every layer (see :class:`KANLayer`).
    grid_eps : float
        Mix of uniform (1) and sample-quantile (0) knots used by :meth:`update_grid`.
    init_scale : float
        Standard deviation of the initial coefficients ``c``.
    bias : bool
        Add a learnable bias to every output of every layer.
    edges : sequence, optional
        Per layer, ``None`` or the kind of every edge (see :meth:`KANLayer.set_edges`): how a
        pruned or symbolic network is rebuilt from its config.
    dtype, device : optional
        Of the parameters and buffers (torch's defaults when omitted).
    """

    def __init__(
        self,
        width: Sequence[int],
        grid: int = 5,
        k: int = 3,
        grid_range: tuple[float, float] = (-1.0, 1.0),
        input_range: Sequence[tuple[float, float]] | None = None,
        basis: str | Basis = "bspline",
        grid_eps: float = 0.02,
        init_scale: float = 0.1,
        bias: bool = False,
        edges: Sequence | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.width = width = check_width(width)
        self.init_scale = init_scale
        self.layers = nn.ModuleList(
            KANLayer(
                n_in,
                n_out,
                grid=grid,
                k=k,
                grid_range=input_range if (i == 0 and input_range is not None) else grid_range,
                basis=basis,
                grid_eps=grid_eps,
                init_scale=init_scale,
                bias=bias,
                dtype=dtype,
                device=device,
            )
            for i, (n_in, n_out) in enumerate(zip(width[:-1], width[1:]))
        )
        if edges is not None:
            if len(edges) != len(self.layers):
                raise ValueError(f"edges lists {len(edges)} layers, the width {len(self.layers)}")
            for layer, kinds in zip(self.layers, edges):
                if kinds is not None:
                    layer.set_edges(kinds)

    @property
    def grid(self) -> int:
        """Grid size ``G`` of the first layer (all layers share it unless changed by hand)."""
        return self.layers[0].grid

    def forward(self, x: Tensor) -> Tensor:
        """``(N, width[0])`` → ``(N, width[-1])``."""
        self.layers[0]._check(x)
        h = x.t()
        for layer in self.layers:
            h = layer._forward(h)
        return h.t()

    def jet(self, x: Tensor, order: int = 2, pairs: Sequence[tuple[int, int]] = ()) -> Jet:
        """Outputs with first derivatives (``order ≥ 1``) and second derivatives for ``pairs``.

        Parameters
        ----------
        x : Tensor
            ``(N, D)`` points.
        order : int
            0, 1 or 2.
        pairs : sequence of (int, int)
            Axis pairs of the second derivatives (``order == 2``), e.g. ``[(0, 0), (1, 1)]``
            for a Laplacian in 2-D.
        """
        self.layers[0]._check(x)
        order = check_order(order)
        pairs = normalize_pairs(pairs, x.shape[1]) if order >= 2 else ()
        inner = None
        h = x.t()
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            # a one-output layer next takes the first layer's jet packed (see KANLayer._jet)
            pack = i < last and self.layers[i + 1]._one_output(order, x.device)
            inner = layer._jet(inner, h, order, pairs, points=x if i == 0 else None, pack=pack)
            h = inner[0]
        return public(inner, pairs)

    def _layer_inputs(self, x: Tensor) -> list[Tensor]:
        inputs = []
        with torch.no_grad():
            for layer in self.layers:
                inputs.append(x)
                x = layer(x)
        return inputs

    def extend_grid(self, new_grid: int, x: Tensor) -> list[Tensor]:
        """Grid extension ``G → new_grid`` of every layer, preserving the network on ``x``.

        Each layer is refitted on its inputs at ``x`` as computed before any change (see
        :meth:`KANLayer.extend_grid`).

        Parameters
        ----------
        new_grid : int
            New number of grid intervals (at least 1).
        x : Tensor
            ``(N, width[0])`` samples of the network's inputs.

        Returns
        -------
        list of Tensor
            The per-layer transfer matrices (see :meth:`KANLayer.set_grid`).

        Raises
        ------
        ValueError
            If ``new_grid < 1`` or ``x`` is not ``(N, width[0])``.
        TypeError
            If ``x`` is not a tensor of the model's dtype.
        """
        # All inputs first, unlike update_grid: a refinement to a multiple keeps each layer's
        # function, so the next layer's inputs do not move (and runs reproduce bit for bit).
        inputs = self._layer_inputs(x)
        return [layer.extend_grid(new_grid, h) for layer, h in zip(self.layers, inputs)]

    def update_grid(self, x: Tensor, grid_eps: float | None = None) -> list[Tensor]:
        """Adapt every layer's grid to the distribution of its inputs on ``x``.

        Layer by layer, each seeing its inputs through the layers already changed (see
        :meth:`KANLayer.update_grid`). A hidden node that is constant on ``x`` (its incoming
        edges removed or constant) keeps a uniform grid over its range.

        Parameters
        ----------
        x : Tensor
            ``(N, width[0])`` samples of the network's inputs.
        grid_eps : float, optional
            Mix of uniform (1) and sample-quantile (0) knots; default each layer's own.

        Returns
        -------
        list of Tensor
            The per-layer transfer matrices (see :meth:`KANLayer.set_grid`).

        Raises
        ------
        ValueError
            If a coordinate of ``x`` is constant (no spread to place knots in).
        """
        return self._change_layers(
            x, lambda i, layer, h: layer.update_grid(h, grid_eps, keep_constant=i > 0)
        )

    def _change_layers(self, x: Tensor, change: Callable) -> list:
        """``change(i, layer, inputs)`` layer by layer, each seeing its inputs through the
        layers already changed: a refit that moves a layer's outputs (quantile knots are not
        nested) would otherwise leave the next one fitted, and its range set, to stale inputs
        (they spilled over the range it was given, and a later extension was not exact)."""
        out = []
        h = x.detach()
        for i, layer in enumerate(self.layers):
            out.append(change(i, layer, h))
            if i + 1 < len(self.layers):
                with torch.no_grad():
                    h = layer(h)
        return out

    def config(self) -> dict:
        """JSON-serialisable description, enough with a state dict to rebuild the model."""
        first = self.layers[0]
        edges = [None if layer._plain else layer.edge_kinds() for layer in self.layers]
        return {
            "type": "kan",
            "width": list(self.width),
            "grid": self.grid,
            "k": first.k,
            "basis": first.basis.name,
            "grid_eps": first.grid_eps,
            "init_scale": self.init_scale,
            "bias": first.bias is not None,
            **({"edges": edges} if any(e is not None for e in edges) else {}),
        }

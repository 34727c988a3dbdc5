"""Kolmogorov–Arnold network layers and networks.

A layer with ``n_in`` inputs and ``n_out`` outputs has one learnable univariate function per
edge, ``φ_{oi}(x) = w_b·silu(x) + w_s·Σ_b c_{oib} B_b(x)``, and each output sums its incoming
edges: ``y_o = Σ_i φ_{oi}(x_i)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .bases import Basis, _uniform_points, get_basis
from .jet import Inner, Jet, Pairs, chain, first_layer, normalize_pairs, public


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


def check_width(width: Sequence[int]) -> list[int]:
    """Layer widths as a list of ints; at least two positive sizes."""
    width = [int(w) for w in width]
    if len(width) < 2 or min(width) < 1:
        raise ValueError(f"width must list at least two positive layer sizes, got {width}")
    return width


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
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        grid: int = 5,
        k: int = 3,
        grid_range=(-1.0, 1.0),
        basis: str | Basis = "bspline",
        grid_eps: float = 0.02,
        init_scale: float = 0.1,
        bias: bool = False,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(f"layer sizes must be positive, got {in_features} -> {out_features}")
        if grid < 1:
            raise ValueError(f"grid must be a positive number of intervals, got {grid}")
        if k < 1:
            raise ValueError(f"spline order k must be >= 1, got {k}")
        dtype = dtype or torch.get_default_dtype()
        self.in_features, self.out_features, self.k = in_features, out_features, k
        self.basis = get_basis(basis)
        self.grid_eps = grid_eps
        ranges = _ranges(grid_range, in_features, dtype, device)
        self.register_buffer("grid_points", self.basis.make_grid(_uniform_points(ranges, grid), k))
        self._prepare()
        nb = self.basis.size(grid, k)
        factory = {"dtype": dtype, "device": device}
        self.coef = nn.Parameter(torch.randn(out_features, in_features, nb, **factory) * init_scale)
        bound = 1 / math.sqrt(in_features)
        self.scale_base = nn.Parameter(
            (torch.rand(out_features, in_features, **factory) * 2 - 1) * bound
        )
        self.scale_spline = nn.Parameter(torch.full((out_features, in_features), bound, **factory))
        self.bias = nn.Parameter(torch.zeros(out_features, **factory)) if bias else None

    # -- grid bookkeeping ---------------------------------------------------------------------
    def _prepare(self) -> None:
        """Recompute the tensors the basis derives from the grid (not saved in state dicts)."""
        self._aux_names = []
        for name, value in self.basis.prepare(self.grid_points, self.k).items():
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
            self.grid_points = torch.empty_like(
                state_dict[key], dtype=self.grid_points.dtype, device=self.grid_points.device
            )
            nb = self.basis.size(self.basis.grid_size(state_dict[key], self.k), self.k)
            self.coef = nn.Parameter(self.coef.new_empty(self.out_features, self.in_features, nb))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._prepare()

    # -- evaluation ---------------------------------------------------------------------------
    def _check(self, x: Tensor) -> None:
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(
                f"KANLayer expects inputs of shape (N, {self.in_features}), got {tuple(x.shape)}"
            )

    def _edges(self, h: Tensor, order: int) -> tuple[Tensor, ...]:
        """Feature-major edges: ``(n_in, N)`` → ``order + 1`` tensors ``(n_out, n_in, N)``."""
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

    def _forward(self, h: Tensor) -> Tensor:
        """Feature-major forward: ``(n_in, N)`` → ``(n_out, N)``."""
        y = self._edges(h, 0)[0].sum(1)
        return y if self.bias is None else y + self.bias.unsqueeze(1)

    def _jet(self, inner: Inner | None, h: Tensor, order: int, pairs: Pairs) -> Inner:
        """Feature-major jet propagation; ``inner=None`` means ``h`` are the coordinates."""
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
        return tuple(p.permute(2, 1, 0) for p in self._edges(x.t(), order))

    def forward(self, x: Tensor) -> Tensor:
        """``(N, n_in)`` → ``(N, n_out)``."""
        self._check(x)
        return self._forward(x.t()).t()

    def basis_values(self, x: Tensor, order: int = 0) -> Tensor:
        """Dense basis functions ``(N, n_in, order + 1, nb)`` (for fitting, tests and plots)."""
        self._check(x)
        feats = self.basis.features(x.t(), self.grid_points, self.k, self._aux, order)
        return feats.permute(2, 1, 0, 3)

    def spline(self, x: Tensor) -> Tensor:
        """The spline part ``Σ_b c_{oib} B_b(x_i)`` of every edge, ``(N, n_in, n_out)``."""
        return torch.einsum("nib,oib->nio", self.basis_values(x)[:, :, 0], self.coef)

    # -- grid changes -------------------------------------------------------------------------
    @torch.no_grad()
    def set_grid(self, points: Tensor, x: Tensor) -> Tensor:
        """Move to a new grid and refit ``c`` by least squares on the samples ``x``.

        Parameters
        ----------
        points : Tensor
            ``(n_in, G' + 1)`` increasing grid points (the grid range and interior knots).
        x : Tensor
            ``(S, n_in)`` samples on which the edge functions are preserved.

        Returns
        -------
        Tensor
            ``(n_in, nb', nb)`` transfer matrices ``R`` with ``c'[o, i] = R[i] @ c[o, i]``;
            apply them to anything that lives on the coefficients (e.g. optimizer moments).
        """
        old = self.basis_values(x)[:, :, 0].transpose(0, 1)  # (n_in, S, nb)
        self.grid_points = self.basis.make_grid(points.to(self.grid_points), self.k)
        self._prepare()
        new = self.basis_values(x)[:, :, 0].transpose(0, 1)  # (n_in, S, nb')
        # Least squares in float64 on the CPU: 'gelsd' gives the minimum-norm solution when a
        # basis function has no samples in its support (e.g. knots beyond a hidden layer's range).
        transfer = torch.linalg.lstsq(
            new.detach().cpu().double(), old.detach().cpu().double(), driver="gelsd"
        ).solution.to(self.coef)
        coef = torch.einsum("ipb,oib->oip", transfer, self.coef)
        self.coef = nn.Parameter(coef, requires_grad=self.coef.requires_grad)
        return transfer

    def extend_grid(self, new_grid: int, x: Tensor) -> Tensor:
        """Change to ``new_grid`` uniform intervals over the same range (see :meth:`set_grid`)."""
        return self.set_grid(_uniform_points(self.grid_range, new_grid), x)

    @torch.no_grad()
    def update_grid(self, x: Tensor, grid_eps: float | None = None, margin: float = 0.0) -> Tensor:
        """Fit the grid to the samples' range and quantiles, keeping ``G`` (see :meth:`set_grid`).

        The new points are ``grid_eps · uniform + (1 - grid_eps) · quantiles`` of the samples
        of each input, extended by ``margin`` on both ends.
        """
        eps = self.grid_eps if grid_eps is None else grid_eps
        g = self.grid
        xs = torch.sort(x.detach(), dim=0).values.t()  # (n_in, S)
        idx = torch.linspace(0, xs.shape[1] - 1, g + 1, device=x.device).round().long()
        adaptive = xs[:, idx]
        lo, hi = xs[:, :1] - margin, xs[:, -1:] + margin
        if not bool((hi > lo).all()):
            raise ValueError("update_grid needs samples with a positive range in every input")
        adaptive = torch.cat([lo, adaptive[:, 1:-1], hi], dim=1)
        uniform = _uniform_points(torch.cat([lo, hi], dim=1), g)
        points = eps * uniform + (1 - eps) * adaptive
        # Quantiles of repeated samples can coincide; keep the knots strictly increasing.
        min_gap = 1e-6 * (hi - lo) / g
        points = torch.maximum(points, torch.cummax(points, dim=1).values)
        for j in range(1, g + 1):
            points[:, j] = torch.maximum(points[:, j], points[:, j - 1] + min_gap[:, 0])
        return self.set_grid(points, x)

    def config(self) -> dict:
        """JSON-serialisable constructor arguments (with the current grid)."""
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "grid": self.grid,
            "k": self.k,
            "basis": self.basis.name,
            "grid_eps": self.grid_eps,
            "bias": self.bias is not None,
        }

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
    grid, k, basis, grid_eps, init_scale, bias
        Passed to every layer (see :class:`KANLayer`).
    grid_range : (float, float)
        Grid interval of the hidden layers (and of the first layer unless ``input_range``).
    input_range : sequence of (float, float), optional
        Grid interval of each input of the first layer, e.g. the domain's bounding box.
    """

    def __init__(
        self,
        width: Sequence[int],
        grid: int = 5,
        k: int = 3,
        grid_range=(-1.0, 1.0),
        input_range=None,
        basis: str | Basis = "bspline",
        grid_eps: float = 0.02,
        init_scale: float = 0.1,
        bias: bool = False,
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
        pairs = normalize_pairs(pairs) if order >= 2 else ()
        self.layers[0]._check(x)
        inner = None
        h = x.t()
        for layer in self.layers:
            inner = layer._jet(inner, h, order, pairs)
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

        Returns the per-layer transfer matrices (see :meth:`KANLayer.set_grid`).
        """
        return [
            layer.extend_grid(new_grid, h) for layer, h in zip(self.layers, self._layer_inputs(x))
        ]

    def update_grid(self, x: Tensor, grid_eps: float | None = None) -> list[Tensor]:
        """Adapt every layer's grid to the distribution of its inputs on ``x``."""
        return [
            layer.update_grid(h, grid_eps) for layer, h in zip(self.layers, self._layer_inputs(x))
        ]

    def config(self) -> dict:
        """JSON-serialisable description, enough with a state dict to rebuild the model."""
        first = self.layers[0]
        return {
            "type": "kan",
            "width": list(self.width),
            "grid": self.grid,
            "k": first.k,
            "basis": first.basis.name,
            "grid_eps": first.grid_eps,
            "init_scale": self.init_scale,
            "bias": first.bias is not None,
        }

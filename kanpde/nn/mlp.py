"""Multilayer perceptron baseline with the same interface as :class:`~kanpde.nn.KAN`."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from .jet import Jet, check_order, normalize_pairs
from .kan import check_inputs, check_width


def _tanh(x):
    t = torch.tanh(x)
    d1 = 1 - t * t
    return t, d1, -2 * t * d1


def _sin(x):
    s = torch.sin(x)
    return s, torch.cos(x), -s


def _silu(x):
    s = torch.sigmoid(x)
    return x * s, s * (1 + x * (1 - s)), s * (1 - s) * (2 + x * (1 - 2 * s))


def _softplus(x):
    s = torch.sigmoid(x)
    return nn.functional.softplus(x), s, s * (1 - s)


def _gelu(x):
    pdf = torch.exp(-0.5 * x * x) * 0.3989422804014327
    cdf = 0.5 * (1 + torch.erf(x * 0.7071067811865476))
    return x * cdf, cdf + x * pdf, pdf * (2 - x * x)


# Each activation returns (f, f', f'') so that jets need no nested autograd.
ACTIVATIONS: dict[str, Callable[[Tensor], tuple[Tensor, Tensor, Tensor]]] = {
    "tanh": _tanh,
    "sin": _sin,
    "silu": _silu,
    "softplus": _softplus,
    "gelu": _gelu,
}


class MLP(nn.Module):
    """Fully connected network ``Linear → σ → … → Linear`` with Glorot-normal weights.

    Parameters
    ----------
    width : sequence of int
        Layer widths, inputs first, e.g. ``[2, 100, 100, 100, 1]``.
    activation : str
        One of ``tanh`` (default), ``sin``, ``silu``, ``softplus`` (β = 1), ``gelu`` (the
        exact, erf form): torch's definitions.
    dtype, device : optional
        Of the parameters (torch's defaults when omitted).
    """

    def __init__(
        self,
        width: Sequence[int],
        activation: str = "tanh",
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        width = check_width(width)
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}"
            )
        self.width, self.activation = width, activation
        self._act = ACTIVATIONS[activation]
        # Initialised on the CPU in float64 and then moved: a seed gives the same model in
        # float32 and float64, on the CPU and on a GPU.
        self.layers = nn.ModuleList(
            nn.Linear(a, b, dtype=torch.float64, device="cpu")
            for a, b in zip(width[:-1], width[1:])
        )
        for layer in self.layers:
            nn.init.xavier_normal_(layer.weight)
            nn.init.zeros_(layer.bias)
        device = torch.get_default_device() if device is None else device
        self.to(dtype=dtype or torch.get_default_dtype(), device=device)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, width[0])`` → ``(N, width[-1])``."""
        check_inputs(x, self.layers[0].weight.dtype, "MLP")
        for layer in self.layers[:-1]:
            x = self._act(layer(x))[0]
        return self.layers[-1](x)

    def jet(self, x: Tensor, order: int = 2, pairs: Sequence[tuple[int, int]] = ()) -> Jet:
        """Outputs with first derivatives (``order ≥ 1``) and second derivatives for ``pairs``.

        Same contract as :meth:`kanpde.nn.KAN.jet`, in closed form (no nested autograd).

        Parameters
        ----------
        x : Tensor
            ``(N, D)`` points, of the model's dtype.
        order : int
            0, 1 or 2.
        pairs : sequence of (int, int)
            Axis pairs of the second derivatives (``order == 2``), e.g. ``[(0, 0), (1, 1)]``
            for a Laplacian in 2-D.

        Returns
        -------
        Jet
            Values ``(N, m)``, first derivatives ``(N, m, D)`` (``None`` for ``order == 0``)
            and second derivatives ``(N, m, P)`` for ``pairs`` (each sorted, duplicates
            removed; ``None`` for ``order < 2``).

        Raises
        ------
        TypeError
            If ``x`` is not a tensor of the model's dtype.
        ValueError
            If ``order`` is not 0, 1 or 2, or a pair has an axis out of range.
        """
        check_inputs(x, self.layers[0].weight.dtype, "MLP")
        order = check_order(order)
        pairs = normalize_pairs(pairs, x.shape[-1]) if order >= 2 else ()
        n, dim = x.shape
        first = self.layers[0]
        # Feature-major derivative tensors: d1 (D, N, width), d2 (P, N, width); every linear
        # layer maps each of them with one matrix product. After the first layer the
        # derivatives are the weight columns themselves (and the second derivatives vanish).
        v = nn.functional.linear(x, first.weight, first.bias)
        d1 = first.weight.t().unsqueeze(1).expand(dim, n, -1) if order >= 1 else None
        d2 = None
        for i in range(1, len(self.layers) + 1):
            if i > 1:
                layer = self.layers[i - 1]
                v = nn.functional.linear(v, layer.weight, layer.bias)
                d1 = None if d1 is None else nn.functional.linear(d1, layer.weight)
                d2 = None if d2 is None else nn.functional.linear(d2, layer.weight)
            if i == len(self.layers):
                break
            f0, f1, f2 = self._act(v)
            if pairs:
                cross = f2 * torch.stack([d1[a] * d1[b] for a, b in pairs])
                d2 = cross if d2 is None else cross + f1 * d2
            if d1 is not None:
                d1 = f1 * d1
            v = f0
        out_d2 = None
        if order >= 2:
            # no activation (a single linear layer): the second derivatives vanish
            out_d2 = (
                d2.permute(1, 2, 0) if d2 is not None else v.new_zeros(n, v.shape[1], len(pairs))
            )
        return Jet(v, None if d1 is None else d1.permute(1, 2, 0), out_d2, pairs)

    def config(self) -> dict:
        """JSON-serialisable description, enough with a state dict to rebuild the model."""
        return {"type": "mlp", "width": list(self.width), "activation": self.activation}

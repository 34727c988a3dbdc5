"""Multilayer perceptron baseline with the same interface as :class:`~kanpde.nn.KAN`."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from .jet import Jet, normalize_pairs


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
        One of ``tanh`` (default), ``sin``, ``silu``, ``softplus``, ``gelu``.
    """

    def __init__(
        self,
        width: Sequence[int],
        activation: str = "tanh",
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        width = [int(w) for w in width]
        if len(width) < 2 or min(width) < 1:
            raise ValueError(f"width must list at least two positive layer sizes, got {width}")
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}"
            )
        self.width, self.activation = width, activation
        self._act = ACTIVATIONS[activation]
        self.layers = nn.ModuleList(
            nn.Linear(a, b, dtype=dtype, device=device) for a, b in zip(width[:-1], width[1:])
        )
        for layer in self.layers:
            nn.init.xavier_normal_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, width[0])`` → ``(N, width[-1])``."""
        for layer in self.layers[:-1]:
            x = self._act(layer(x))[0]
        return self.layers[-1](x)

    def jet(self, x: Tensor, order: int = 2, pairs: Sequence[tuple[int, int]] = ()) -> Jet:
        """Outputs with derivatives; same contract as :meth:`kanpde.nn.KAN.jet`."""
        pairs = normalize_pairs(pairs) if order >= 2 else ()
        n, dim = x.shape
        # Value, first and second derivatives stacked as channels (N, 1 + D + P, width): every
        # linear layer is then a single matrix product over all channels.
        first = self.layers[0]
        z = [x.unsqueeze(1)]
        if order >= 1:
            z.append(torch.eye(dim, dtype=x.dtype, device=x.device).expand(n, dim, dim))
        if pairs:
            z.append(x.new_zeros(n, len(pairs), dim))
        z = torch.cat(z, dim=1)
        for i, layer in enumerate(self.layers):
            if i == 0:
                z = nn.functional.linear(z, first.weight)
            else:
                z = nn.functional.linear(z, layer.weight)
            z = torch.cat([z[:, :1] + layer.bias, z[:, 1:]], dim=1)
            if i == len(self.layers) - 1:
                break
            f0, f1, f2 = self._act(z[:, 0])
            parts = [f0.unsqueeze(1)]
            if order >= 1:
                d1 = z[:, 1 : 1 + dim]
                parts.append(f1.unsqueeze(1) * d1)
                if pairs:
                    d2 = z[:, 1 + dim :]
                    # Basic indexing (no index tensors from lists): safe in CUDA-graph capture.
                    cross = torch.stack([d1[:, i] * d1[:, j] for i, j in pairs], dim=1)
                    parts.append(f2.unsqueeze(1) * cross + f1.unsqueeze(1) * d2)
            z = torch.cat(parts, dim=1)
        d1 = z[:, 1 : 1 + dim].transpose(1, 2) if order >= 1 else None
        d2 = z[:, 1 + dim :].transpose(1, 2) if order >= 2 else None
        return Jet(z[:, 0], d1, d2, pairs)

    def config(self) -> dict:
        """JSON-serialisable description, enough with a state dict to rebuild the model."""
        return {"type": "mlp", "width": list(self.width), "activation": self.activation}

"""Trial functions: KAN layers and bases, the MLP baseline, parameter counts."""

from __future__ import annotations

import torch
from torch import nn

from .bases import BASES, Basis, get_basis
from .jet import Jet
from .kan import KAN, KANLayer
from .mlp import ACTIVATIONS, MLP

__all__ = [
    "ACTIVATIONS",
    "BASES",
    "KAN",
    "MLP",
    "Basis",
    "Jet",
    "KANLayer",
    "count_parameters",
    "from_config",
    "get_basis",
]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable numeric parameters (no knots, masks or other buffers)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def from_config(
    config: dict, dtype: torch.dtype | None = None, device: torch.device | str | None = None
) -> nn.Module:
    """Build a model from ``model.config()`` (load its state dict afterwards)."""
    cfg = dict(config)
    kind = cfg.pop("type", "kan")
    if kind == "kan":
        return KAN(**cfg, dtype=dtype, device=device)
    if kind == "mlp":
        return MLP(**cfg, dtype=dtype, device=device)
    if kind == "custom":
        raise ValueError(
            f"the model is a module of the user's own ({cfg.get('class')}); build it again and "
            "load the run's state into it: net.load_state_dict(run.state_dict())"
        )
    raise ValueError(f"unknown model type {kind!r} in config; expected 'kan' or 'mlp'")

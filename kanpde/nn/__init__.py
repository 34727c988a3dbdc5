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
    """Number of trainable numeric parameters (no knots, masks or other buffers).

    Parameters
    ----------
    model : nn.Module
        Any module; parameters with ``requires_grad=False`` are not counted.

    Returns
    -------
    int
        Total number of elements of the trainable parameters.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def from_config(
    config: dict, dtype: torch.dtype | None = None, device: torch.device | str | None = None
) -> nn.Module:
    """Build a model from ``model.config()`` (load its state dict afterwards).

    Parameters
    ----------
    config : dict
        A :meth:`KAN.config` or :meth:`MLP.config`: ``"type"`` (``"kan"``, the default, or
        ``"mlp"``) and the constructor's keyword arguments. It is not modified.
    dtype : torch.dtype, optional
        Of the parameters (torch's default when omitted).
    device : torch.device or str, optional
        Of the parameters (torch's default when omitted).

    Returns
    -------
    nn.Module
        A new :class:`KAN` or :class:`MLP` with freshly initialised parameters.

    Raises
    ------
    ValueError
        If the type is unknown, is ``"custom"`` (a user's own module, which cannot be rebuilt
        from its config), or the constructor rejects a value.
    TypeError
        If the config has a key the model's constructor does not take.
    """
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

"""A trial function given in closed form (or a model hidden behind one), for evaluating loss
terms on known solutions or through plain autograd."""

from torch import nn


class Closed(nn.Module):
    """Wraps ``f(x)`` as a model without a jet, so every derivative comes from autograd.

    ``f`` may be a function (no parameters) or a model, whose parameters stay visible because
    ``nn.Module`` registers a module attribute as a submodule.
    """

    def __init__(self, f):
        super().__init__()
        self.f = f

    def forward(self, x):
        return self.f(x)

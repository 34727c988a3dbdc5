"""The step a CUDA graph captures must not synchronise with the host.

On a GPU the trainer records one loss+gradient evaluation as a CUDA graph
(``training._CapturedGradient``); an op that reads a value back to the host (``.item()``,
``bool(tensor)``, boolean-mask indexing, ``nonzero``) or copies host data in (``torch.tensor``
of Python numbers) makes the capture fail. This machine has no GPU, so the same evaluation runs
on the CPU with the CPU-only fast paths (first layer's sparse operator, one-output Function)
switched off, as they are on CUDA, while a dispatch mode records every aten op.
"""

from pathlib import Path

import pytest
import torch
from closed_form import Closed
from torch.utils._python_dispatch import TorchDispatchMode

import kanpde
from kanpde.losses import Residuals
from kanpde.nn.bases import BSpline
from kanpde.nn.kan import KANLayer
from kanpde.symbolic import fix_symbolic, prune, regularization
from kanpde.training import _CapturedGradient, build_model

PROBLEMS = Path(__file__).resolve().parents[1] / "problems"
NAMES = sorted(p.stem for p in PROBLEMS.glob("*.py"))
POINTS = {"interior": 120, "boundary": 40, "initial": 40}
DT = torch.float64

# Ops that read device memory on the host or copy host memory to the device mid-stream.
SYNCING = {
    "_local_scalar_dense",  # .item(), bool(), float() of a tensor
    "is_nonzero",
    "nonzero",
    "masked_select",
    "_unique2",
    "unique_dim",
    "unique_consecutive",
    "repeat_interleave",
    "equal",
    "lift_fresh",  # torch.tensor(<Python data>)
}


class SyncRecorder(TorchDispatchMode):
    """Records the syncing aten ops (and boolean-mask indexing) run under it."""

    def __init__(self) -> None:
        super().__init__()
        self.hits: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._schema.name.split("::")[-1]
        if name in SYNCING:
            self.hits.append(name)
        elif name.startswith("index") and len(args) > 1 and isinstance(args[1], (list, tuple)):
            if any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in args[1]):
                self.hits.append(f"{name} with a boolean mask")
        return func(*args, **(kwargs or {}))


@pytest.fixture
def cuda_paths(monkeypatch):
    """Take the code paths a CUDA model takes (the CPU-only fast paths off)."""
    monkeypatch.setattr(KANLayer, "_fixed_points", lambda self, points: False)
    monkeypatch.setattr(KANLayer, "_one_output", lambda self, order, device: False)


def _hits(residuals: Residuals) -> list[str]:
    """The syncing ops of the step the trainer captures; its gradients are checked against
    those of the plain path (the same loss, every derivative by nested autograd)."""
    # the network's parameters and an inverse problem's unknowns, as the trainer steps them
    params = [p for p in residuals.trainable.parameters() if p.requires_grad]
    plain = Residuals(residuals.problem, Closed(residuals.model), POINTS,
                      residuals.problem.weights, DT, "cpu")  # fmt: skip
    plain.unknowns = residuals.unknowns  # the same tensors, for their gradients
    if residuals.penalty is not None:
        plain.penalty_weight = residuals.penalty_weight
        plain.penalty = lambda wrapped, x: residuals.penalty(wrapped.f, x)
    for p in params:
        p.grad = None  # an earlier call's would add up
    plain()[0].backward(inputs=params)
    # (zeros for parameters the loss does not reach, as the step makes them)
    expected = [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    loss, _ = residuals()  # lazy caches are built outside the capture too (warm-up)
    loss.backward(inputs=params)
    for p in params:
        p.grad = None  # as before the capture
    with SyncRecorder() as rec:
        _CapturedGradient.step(residuals, params)
    assert all(p.grad is not None and p.grad.is_contiguous() for p in params)
    # the captured step's gradients are the loss's (not only present): to round-off
    scale = max(float(g.abs().max()) for g in expected if g.numel())
    for p, g in zip(params, expected, strict=True):
        torch.testing.assert_close(p.grad, g, rtol=0, atol=1e-11 * scale)
    return sorted(set(rec.hits))


def _residuals(name: str, model_cfg: dict | None = None, model=None) -> Residuals:
    problem = kanpde.load_problem(PROBLEMS / f"{name}.py")
    torch.manual_seed(0)
    if model is None:
        model = build_model(problem, model_cfg or {}, DT, "cpu")
    return Residuals(problem, model, POINTS, problem.weights, DT, "cpu")


def test_the_recorder_sees_each_kind_of_sync():
    a = torch.linspace(-1, 1, 5, dtype=DT)
    with SyncRecorder() as rec:
        a.sum().item()
        bool((a > 0).any())
        _ = a[a > 0]
        torch.tensor([1.0, 2.0])
        a.nonzero()
    assert rec.hits == [
        "_local_scalar_dense",
        "_local_scalar_dense",
        "index with a boolean mask",
        "lift_fresh",
        "nonzero",
    ]


@pytest.mark.parametrize("name", NAMES)
def test_catalogue_step_is_capturable(name, cuda_paths):
    residuals = _residuals(name)
    assert residuals.fully_fused  # what makes the trainer capture it on CUDA
    assert _hits(residuals) == []


@pytest.mark.parametrize(
    "cfg",
    [{"type": "mlp"}, {"basis": "chebyshev"}, {"width": [2, 5, 5, 1], "grid": 7, "k": 2}],
    ids=["mlp", "chebyshev", "deep-k2"],
)
def test_other_models_are_capturable(cfg, cuda_paths):
    assert _hits(_residuals("poisson2d", cfg)) == []


def test_sparsity_penalty_is_capturable(cuda_paths):
    residuals = _residuals("poisson2d", {"width": [2, 5, 5, 1]})
    residuals.penalty, residuals.penalty_weight = regularization, 1e-3
    assert _hits(residuals) == []


def test_edited_kans_are_capturable(cuda_paths):
    problem = kanpde.load_problem(PROBLEMS / "poisson2d.py")
    torch.manual_seed(0)
    model = build_model(problem, {"width": [2, 5, 5, 1]}, DT, "cpu")
    x = torch.rand(300, 2, dtype=DT) * 2 - 1
    fix_symbolic(model, 0, 0, 0, "sin")
    fix_symbolic(model, 1, 1, 2, "0", x=x)
    assert not model.layers[0]._plain
    assert _hits(_residuals("poisson2d", model=model)) == []
    pruned = prune(model, x, edge_threshold=0.02, node_threshold=0.0)
    assert _hits(_residuals("poisson2d", model=pruned)) == []
    # A layer with no spline edge left keeps empty spline parameters the loss does not reach:
    # the capture read their (None) gradients (notebook 05's symbolic model on a GPU).
    for j in range(5):
        fix_symbolic(model, 2, j, 0, "x")
    assert model.layers[2].coef.numel() == 0
    assert _hits(_residuals("poisson2d", model=model)) == []


def test_a_sync_inside_the_step_is_caught(cuda_paths, monkeypatch):
    # e.g. clamping the slot lookup with a range read back to the host
    slots = BSpline.slots

    def syncing_slots(self, h, grid_buffer, aux):
        float(h.detach().max())
        return slots(self, h, grid_buffer, aux)

    monkeypatch.setattr(BSpline, "slots", syncing_slots)
    assert _hits(_residuals("poisson2d")) == ["_local_scalar_dense"]

"""The first layer's sparse operator at fixed points (kanpde.nn.fixed_points) against the
regular evaluation: values, jets, parameter gradients, double backward and cache invalidation."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

from kanpde.nn import KAN
from kanpde.nn.fixed_points import _Product

DT = torch.float64


def model_and_points(width, n=200, seed=0, dtype=DT, grid=7):
    torch.manual_seed(seed)
    model = KAN(width, grid=grid, dtype=dtype, bias=True)
    x = torch.rand(n, width[0], dtype=dtype) * 2.4 - 1.2  # some points outside the grid
    knots = model.layers[0].grid_points[0, 3:8]
    x[: len(knots)] = knots.unsqueeze(1)  # and some exactly on knots
    return model, x


def jets_and_grads(model, x, order, pairs):
    params = list(model.parameters())
    jet = model.jet(x, order, pairs)
    parts = [t for t in (jet.value, jet.d1, jet.d2) if t is not None]
    loss = sum((i + 1) * (t * t).sum() for i, t in enumerate(parts))
    return parts, torch.autograd.grad(loss, params)


def rel(a, b):
    return float((a - b).detach().abs().max() / b.detach().abs().max().clamp_min(1e-300))


CASES = [
    ([2, 10, 1], [(0, 0), (1, 1)]),
    ([3, 5, 4, 2], [(0, 0), (0, 1), (2, 2)]),
    ([1, 4, 1], [(0, 0)]),
    ([2, 3], [(0, 1)]),  # one layer, only a mixed pair (zero)
]


@pytest.mark.parametrize("order", [0, 1, 2])
@pytest.mark.parametrize("width,pairs", CASES, ids=[str(c[0]) for c in CASES])
def test_operator_path_matches_the_regular_path(width, pairs, order):
    model, x = model_and_points(width)
    fixed, g_fixed = jets_and_grads(model, x, order, pairs)
    assert model.layers[0]._point_ops._op is not None  # the operator path was taken
    regular, g_regular = jets_and_grads(model, x.clone().requires_grad_(), order, pairs)
    assert len(fixed) == len(regular)
    for a, b in zip(fixed, regular):
        assert a.shape == b.shape
        if b.abs().max() > 0:
            assert rel(a, b) <= 1e-12
        else:
            assert a.abs().max() == 0
    for a, b in zip(g_fixed, g_regular):
        assert rel(a, b) <= 1e-12


def test_float32():
    model, x = model_and_points([2, 10, 1], dtype=torch.float32)
    pairs = [(0, 0), (1, 1)]
    fixed, g_fixed = jets_and_grads(model, x, 2, pairs)
    regular, g_regular = jets_and_grads(model, x.clone().requires_grad_(), 2, pairs)
    for a, b in zip([*fixed, *g_fixed], [*regular, *g_regular]):
        assert rel(a, b) <= 2e-5


def test_products_are_differentiable_twice():
    model, x = model_and_points([2, 3, 1], n=12)
    layer = model.layers[0]
    layer._jet(None, x.t(), 2, ((0, 0), (1, 1)), points=x)
    op = layer._point_ops._op
    theta = torch.randn(op.matrix.shape[1], 3, dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: _Product.apply(t, op), (theta,))
    assert torch.autograd.gradgradcheck(lambda t: _Product.apply(t, op) ** 2, (theta,))


def test_operator_is_reused_and_rebuilt_when_stale():
    model, x = model_and_points([2, 6, 1])
    layer = model.layers[0]
    pairs = [(0, 0), (1, 1)]

    def check(points, order=2, p=pairs):
        got = model.jet(points, order, p)
        ref = model.jet(points.clone().requires_grad_(), order, p)
        for a, b in zip((got.value, got.d1, got.d2), (ref.value, ref.d1, ref.d2)):
            if b is not None:
                assert rel(a.detach(), b.detach()) <= 1e-12
        return layer._point_ops._op

    first = check(x)
    assert check(x) is first  # same points, same grid: reused
    with torch.no_grad():
        x.mul_(0.5)  # edited in place
    second = check(x)
    assert second is not first
    assert check(x, order=1) is not second  # other order
    third = check(x, order=2, p=[(0, 0)])  # other pairs
    assert check(x.clone(), p=[(0, 0)]) is not third  # equal values, another tensor
    fourth = check(x, p=[(0, 0)])
    model.update_grid(torch.rand(300, 2, dtype=DT) ** 3)  # new knots
    assert check(x, p=[(0, 0)]) is not fourth
    fifth = layer._point_ops._op
    model.extend_grid(12, x)
    assert check(x, p=[(0, 0)]) is not fifth


def test_copies_and_pickles_start_with_an_empty_cache():
    model, x = model_and_points([2, 4, 1])
    model.jet(x, 2, [(0, 0)])
    for other in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert other.layers[0]._point_ops._op is None
        a, b = other.jet(x, 2, [(0, 0)]), model.jet(x, 2, [(0, 0)])
        assert torch.equal(a.d2, b.d2)


def test_points_with_gradient_keep_their_gradient():
    model, x = model_and_points([2, 4, 1], n=30)
    x.requires_grad_(True)
    jet = model.jet(x, 1)
    (gx,) = torch.autograd.grad(jet.value.sum(), x)
    assert torch.allclose(gx, jet.d1[:, 0, :], rtol=0, atol=1e-13)
    assert model.layers[0]._point_ops._op is None


def test_large_point_sets_keep_the_regular_path(monkeypatch):
    from kanpde.nn import fixed_points

    model, x = model_and_points([2, 4, 1], n=50)
    monkeypatch.setattr(fixed_points, "MAX_COORDINATES", 99)
    model.jet(x, 2, [(0, 0)])
    assert model.layers[0]._point_ops._op is None
    monkeypatch.setattr(fixed_points, "MAX_COORDINATES", 100)
    model.jet(x, 2, [(0, 0)])
    assert model.layers[0]._point_ops._op is not None


def test_empty_and_inference_points_keep_the_regular_path():
    model, x = model_and_points([2, 4, 1], n=20)
    empty = model.jet(x[:0], 2, [(0, 0)])
    assert empty.value.shape == (0, 1) and empty.d2.shape == (0, 1, 1)
    with torch.inference_mode():
        frozen = x.clone()
    jet = model.jet(frozen, 2, [(0, 0)])
    assert model.layers[0]._point_ops._op is None
    assert rel(jet.d2, model.jet(x.clone().requires_grad_(), 2, [(0, 0)]).d2) <= 1e-12


def test_loaded_and_converted_models_rebuild_the_operator():
    model, x = model_and_points([2, 4, 1])
    other, _ = model_and_points([2, 4, 1], seed=1)
    other.update_grid(torch.rand(300, 2, dtype=DT) ** 2)
    model.jet(x, 2, [(0, 0)])
    model.load_state_dict(other.state_dict())  # other knots and coefficients
    assert torch.equal(model.jet(x, 2, [(0, 0)]).d2, other.jet(x, 2, [(0, 0)]).d2)
    single = copy.deepcopy(model).float()
    xf = x.float()
    assert rel(single.jet(xf, 2, [(0, 0)]).d2, model.jet(x, 2, [(0, 0)]).d2.float()) <= 1e-5

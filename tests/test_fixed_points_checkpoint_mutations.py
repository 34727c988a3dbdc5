"""Mutation-round tests for kanpde.nn.fixed_points and kanpde.checkpoint: the operator's
documented memory layouts, the size limit of the operator path, a cache that notices a point
tensor whose data was swapped for another number of points, and one-line checkpoint errors."""

from __future__ import annotations

import pytest
import torch

from kanpde import checkpoint
from kanpde.nn import KAN, fixed_points
from kanpde.results import ResultsError

DT = torch.float64


def _model_and_points(width, n, seed=0):
    torch.manual_seed(seed)
    model = KAN(width, grid=5, dtype=DT)
    return model, torch.rand(n, width[0], dtype=DT) * 2 - 1


def test_operator_products_follow_the_documented_row_order_and_layouts():
    # catches: apply() ignoring contiguous=True (handing back the transposed points-first view)
    model, x = _model_and_points([2, 3, 1], n=9)
    layer = model.layers[0]
    layer._jet(None, x.t(), 2, ((0, 0), (1, 1)), points=x)
    op = layer._point_ops._op
    assert (op.blocks, op.n_points) == (1 + 2 + 2, 9)  # values, two gradients, two pairs
    theta = torch.randn(op.matrix.shape[1], 3, dtype=DT)
    # rows are b·N + n: the dense product reshaped (blocks, N, n_out), then feature-major
    dense = (op.matrix.to_dense() @ theta).view(5, 9, 3).transpose(1, 2)
    y = op.apply(theta)
    assert y.shape == (5, 3, 9) and y.is_contiguous()
    torch.testing.assert_close(y, dense, rtol=0, atol=1e-14)
    view = op.apply(theta, contiguous=False)
    assert view.stride() == (9 * 3, 1, 3)  # the product's points-first memory, not copied
    torch.testing.assert_close(view, dense, rtol=0, atol=1e-14)
    # the adjoint is Sᵀ G with G laid out the same way
    g = torch.randn(5, 3, 9, dtype=DT)
    expect = op.matrix.to_dense().t() @ g.transpose(1, 2).reshape(45, 3)
    torch.testing.assert_close(op.adjoint(g), expect, rtol=0, atol=1e-13)


def test_point_sets_up_to_two_to_the_twentieth_coordinates_take_the_operator_path():
    # catches: a smaller MAX_COORDINATES, which sends every usual point set (a few thousand
    # points) to the slow regular path without any visible error
    assert fixed_points.MAX_COORDINATES == 1 << 20
    layer = KAN([2, 3, 1], grid=3, dtype=DT).layers[0]
    assert layer._fixed_points(torch.empty(1 << 19, 2, dtype=DT))  # N·D = 2^20: served
    assert not layer._fixed_points(torch.empty((1 << 19) + 1, 2, dtype=DT))
    model, x = _model_and_points([2, 4, 1], n=3000)
    model.jet(x, 2, [(0, 0), (1, 1)])
    assert model.layers[0]._point_ops._op is not None


def test_points_given_other_data_of_another_size_get_a_new_operator():
    # catches: the cache key without the shape. Assigning x.data bumps no version counter;
    # the shape in the key still catches a new number of points (same-size value edits
    # through .data stay unnoticed, as documented).
    model, x = _model_and_points([2, 4, 1], n=20)
    model.jet(x, 2, [(0, 0)])
    first = model.layers[0]._point_ops._op
    other = torch.rand(31, 2, dtype=DT) * 2 - 1
    x.data = other.clone()
    got = model.jet(x, 2, [(0, 0)])
    assert model.layers[0]._point_ops._op is not first
    ref = model.jet(other.requires_grad_(), 2, [(0, 0)])  # the regular path
    assert got.d2.shape == (31, 1, 1)
    torch.testing.assert_close(got.value, ref.value.detach(), rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(got.d2, ref.d2.detach(), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize(
    "error,why",
    [(OSError("bad block\n  at offset 4096"), "bad block"), (KeyError(), "KeyError")],
)
def test_a_corrupt_checkpoint_is_reported_in_one_line_even_for_a_long_error(
    tmp_path, monkeypatch, error, why
):
    # catches: the raw error put into the message (several lines, or "()" for an error
    # without a message) instead of its first line or its type's name
    ck = checkpoint.save_checkpoint(tmp_path / "checkpoint.h5", {"position": {"step": 3}})

    def damaged(node):
        raise error

    monkeypatch.setattr(checkpoint, "_read", damaged)
    with pytest.raises(ResultsError) as e:
        checkpoint.load_checkpoint(tmp_path)
    assert str(e.value) == f"{ck}: unreadable or corrupt checkpoint ({why})"


@pytest.mark.parametrize(
    "key,attr,value",
    [("w", "dtype", "float128"), ("s", "keys", "[1]")],  # a dtype this torch lacks; bad keys
)
def test_damaged_attributes_read_as_a_corrupt_checkpoint(tmp_path, key, attr, value):
    # catches: AttributeError / TypeError escaping load_checkpoint's promised ResultsError
    import h5py

    ck = checkpoint.save_checkpoint(tmp_path / "checkpoint.h5", {"w": torch.ones(2), "s": {"a": 1}})
    with h5py.File(ck, "a") as f:
        f[key].attrs[attr] = value
    with pytest.raises(ResultsError, match="unreadable or corrupt checkpoint"):
        checkpoint.load_checkpoint(tmp_path)

"""The one-output layer's fused jet (kanpde.nn.one_output) against plain autograd."""

import pytest
import torch

from kanpde.nn import KAN
from kanpde.nn.jet import chain
from kanpde.nn.kan import KANLayer
from kanpde.nn.one_output import _OneOutputJet, one_output_jet, silu_scaled

DT = torch.float64
PAIRS = {"none": (), "diag": ((0, 0), (1, 1)), "mixed": ((0, 0), (0, 1), (1, 1))}


def _layer(k: int, n_in: int = 5, grid: int = 4) -> KANLayer:
    torch.manual_seed(k)
    layer = KAN([2, n_in, 1], grid=grid, k=k, dtype=DT).layers[1]
    with torch.no_grad():
        layer.coef.normal_()
        layer.scale_base.normal_()
        layer.scale_spline.uniform_(0.5, 1.5)
    return layer


def _inputs(n_in: int, n: int, pairs, order: int, with_j2: bool, sorted_points: bool = False):
    # Inputs reach beyond the grid range [-1, 1] and past all knots; sorted inputs put long
    # runs of neighbouring points into one knot interval (the gradient scatter's hard case).
    h = torch.rand(n_in, n, dtype=DT) * 5 - 2.5
    if sorted_points:
        h = h.sort(dim=1).values
    j1 = torch.randn(2, n_in, n, dtype=DT)
    j2 = torch.randn(len(pairs), n_in, n, dtype=DT) if order == 2 and with_j2 else None
    return [t if t is None else t.requires_grad_() for t in (h, j1, j2)]


def _plain(layer, h, j1, j2, pairs, order):
    return chain(layer._edges(h, order), (h, j1, j2), pairs)[: order + 1]


def _fused(layer, h, j1, j2, pairs, order, packed=None):
    aux = layer._aux
    flat = layer.basis.slots(h.detach(), layer.grid_points, aux)
    table = layer.basis.table(layer.coef, layer.scale_spline, layer.k, aux)
    jet = packed if packed is not None else (h, j1, j2)
    out = one_output_jet(jet, table, layer.scale_base, aux["left"], flat, pairs, order)
    return out[: order + 1]


def _grads(outs, inputs, seed=0, create_graph=False):
    gen = torch.Generator().manual_seed(seed)
    outs = [o for o in outs if o.requires_grad]
    cot = [torch.randn(o.shape, generator=gen, dtype=DT) for o in outs]
    return torch.autograd.grad(
        outs, inputs, cot, create_graph=create_graph, allow_unused=True, retain_graph=True
    )


def _close(a, b, tol):
    """Equal to ``tol`` relative to ``1 + max|b|``; a missing gradient equals zeros."""
    if a is None or b is None:
        other = b if a is None else a
        assert other is None or not bool(other.any())
        return
    assert a.shape == b.shape
    a, b = a.detach(), b.detach()
    if a.numel():
        assert float((a - b).abs().max()) <= tol * (1 + float(b.abs().max()))


def test_silu_scaled_derivatives_match_autograd():
    h = torch.linspace(-8, 8, 401, dtype=DT, requires_grad=True)
    got = silu_scaled(h, 3)
    f = torch.nn.functional.silu(h)
    factorial = 1.0
    for q in range(4):
        if q:
            (f,) = torch.autograd.grad(f.sum(), h, create_graph=True)
            factorial *= q
        assert torch.allclose(got[q], f / factorial, atol=1e-14, rtol=1e-12), q


CASES = [(1, "none", False)] + [
    (2, pairs, with_j2) for pairs in ("diag", "mixed", "none") for with_j2 in (True, False)
]


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("order,pairs,with_j2", CASES)
def test_values_and_gradients_equal_plain_autograd(k, order, pairs, with_j2):
    pairs = PAIRS[pairs]
    layer = _layer(k)
    h, j1, j2 = _inputs(5, 61, pairs, order, with_j2, sorted_points=k == 3)
    params = [layer.coef, layer.scale_base, layer.scale_spline]
    inputs = [t for t in (h, j1, j2) if t is not None] + params
    plain = _plain(layer, h, j1, j2, pairs, order)
    fused = _fused(layer, h, j1, j2, pairs, order)
    for a, b in zip(fused, plain):
        _close(a, b, 1e-13)
    for a, b in zip(_grads(fused, inputs), _grads(plain, inputs)):
        _close(a, b, 1e-13)


@pytest.mark.parametrize("order,pairs", [(1, "none"), (2, "diag"), (2, "mixed")])
def test_second_order_gradients_equal_plain_autograd(order, pairs):
    """Under create_graph the Function differentiates its recomputation: a Hessian-vector
    product through it equals plain autograd's."""
    pairs = PAIRS[pairs]
    layer = _layer(3)
    h, j1, j2 = _inputs(5, 29, pairs, order, True)
    params = [layer.coef, layer.scale_base, layer.scale_spline]
    inputs = [t for t in (h, j1, j2) if t is not None] + params
    results = []
    for fn in (_fused, _plain):
        grads = _grads(fn(layer, h, j1, j2, pairs, order), inputs, create_graph=True)
        gen = torch.Generator().manual_seed(1)
        dot = sum((g * torch.randn(g.shape, generator=gen, dtype=DT)).sum() for g in grads)
        results.append(torch.autograd.grad(dot, inputs, allow_unused=True))
    for a, b in zip(*results):
        _close(a, b, 1e-12)


def test_gradcheck_and_gradgradcheck():
    layer = _layer(3, n_in=3, grid=3)
    pairs = PAIRS["mixed"]
    h, j1, j2 = _inputs(3, 7, pairs, 2, True)
    aux = layer._aux
    flat = layer.basis.slots(h.detach(), layer.grid_points, aux)
    table = layer.basis.table(layer.coef, layer.scale_spline, layer.k, aux).detach()
    table.requires_grad_()
    wb = layer.scale_base.detach().clone().requires_grad_()

    def f(h, j1, j2, table, wb):
        return _OneOutputJet.apply(None, h, j1, j2, table, wb, aux["left"], flat, pairs, 2)

    args = (h, j1, j2, table, wb)
    assert torch.autograd.gradcheck(f, args)
    assert torch.autograd.gradgradcheck(f, args)


def test_packed_points_first_input_gives_the_same_and_keeps_its_layout():
    """The first layer's sparse operator hands over one packed tensor in points-first memory;
    the gradient comes back in that memory (no transposing copy), equal to the plain path."""
    layer = _layer(3)
    pairs = PAIRS["mixed"]
    h, j1, j2 = _inputs(5, 53, pairs, 2, True)
    memory = torch.cat([h[None], j1, j2]).detach().transpose(1, 2).contiguous()
    packed = memory.transpose(1, 2).requires_grad_()  # (6, 5, 53) view of (6, 53, 5) memory
    ph, pj1, pj2 = packed[0], packed[1:3], packed[3:]
    plain = _plain(layer, ph, pj1, pj2, pairs, 2)
    fused = _fused(layer, ph, pj1, pj2, pairs, 2, packed=packed)
    for a, b in zip(fused, plain):
        _close(a, b, 1e-13)
    params = [layer.coef, layer.scale_base, layer.scale_spline]
    g_fused = _grads(fused, [packed] + params)
    g_plain = _grads(plain, [packed] + params)
    for a, b in zip(g_fused, g_plain):
        _close(a, b, 1e-13)
    strides = []
    hook = packed.register_hook(lambda g: strides.append(g.stride()))
    _grads(_fused(layer, ph, pj1, pj2, pairs, 2, packed=packed), [packed])
    assert strides == [packed.stride()]
    hook.remove()
    # and second-order gradients through the packed input, as through the plain path
    results = []
    fused = _fused(layer, ph, pj1, pj2, pairs, 2, packed=packed)
    for outs in (fused, _plain(layer, ph, pj1, pj2, pairs, 2)):
        grads = _grads(outs, [packed] + params, create_graph=True)
        gen = torch.Generator().manual_seed(2)
        dot = sum((g * torch.randn(g.shape, generator=gen, dtype=DT)).sum() for g in grads)
        results.append(torch.autograd.grad(dot, [packed] + params, allow_unused=True))
    for a, b in zip(*results):
        _close(a, b, 1e-12)


@pytest.mark.parametrize("width", [[2, 7, 1], [3, 5, 4, 1]])
@pytest.mark.parametrize("order,pairs", [(1, "none"), (2, "diag"), (2, "mixed")])
@pytest.mark.parametrize("x_grad", [False, True])
def test_network_jets_and_gradients_equal_the_plain_path(monkeypatch, width, order, pairs, x_grad):
    """KAN.jet with the fused last layer (and, at fixed points, the packed first layer) equals
    the same network with the fused path switched off."""
    pairs = tuple(p for p in PAIRS[pairs] if max(p) < width[0])
    torch.manual_seed(0)
    model = KAN(width, grid=5, dtype=DT)
    with torch.no_grad():
        for layer in model.layers:
            layer.coef.normal_()
            layer.scale_base.normal_()
    x = torch.rand(300, width[0], dtype=DT) * 2 - 1
    if x_grad:
        x.requires_grad_()
    params = list(model.parameters())

    def run():
        jet = model.jet(x, order, pairs)
        outs = [t for t in (jet.value, jet.d1, jet.d2) if t is not None]
        return outs, _grads(outs, params)

    fused_outs, fused_grads = run()
    monkeypatch.setattr(KANLayer, "_one_output", lambda self, order, device: False)
    plain_outs, plain_grads = run()
    for a, b in zip(fused_outs, plain_outs):
        _close(a, b, 1e-13)
    for a, b in zip(fused_grads, plain_grads):
        _close(a, b, 1e-13)


def test_last_layer_takes_the_fused_path_on_the_cpu():
    torch.manual_seed(0)
    model = KAN([2, 4, 1], grid=5, dtype=DT)
    x = torch.rand(50, 2, dtype=DT)
    inner = model.layers[0]._jet(None, x.t(), 2, ((0, 0),), points=x, pack=True)
    assert isinstance(inner, torch.Tensor) and inner.shape == (4, 4, 50)
    assert inner.stride(-1) != 1  # the sparse operator's points-first memory
    value, _, _ = model.layers[1]._jet(inner, inner[0], 2, ((0, 0),))
    assert type(value.grad_fn).__name__ == "_OneOutputJetBackward"
    assert not model.layers[1]._one_output(2, torch.device("meta"))  # CPU only
    assert not model.layers[0]._one_output(2, torch.device("cpu"))  # four outputs

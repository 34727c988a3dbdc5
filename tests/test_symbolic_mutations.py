"""Mutation-audit tests of :mod:`kanpde.symbolic` and :mod:`kanpde.schedule`.

Each test pins one behaviour that the rest of the suite let a plausible mutation of the code
change unnoticed. Expected values come from mathematics (closed forms, NumPy least squares
and correlations, the documented rules), never from the code's own output. Everything is
float64 on the CPU with fixed seeds, on one thread.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import sympy
import torch
from test_symbolic import _single_thread, grid2  # noqa: F401 (a module-wide fixture)
from test_symbolic import sine_problem as symbolic_sine_problem

import kanpde
from kanpde import symbolic as S
from kanpde.cli import main
from kanpde.losses import Residuals
from kanpde.nn import KAN, count_parameters
from kanpde.schedule import ScheduleError, Stage, parse_schedule

DT = torch.float64
ROOT = Path(__file__).resolve().parents[1]
X1 = torch.linspace(-1, 1, 201, dtype=DT).unsqueeze(1)  # symmetric: mean x = 0, mean |x| ≈ 1/2


def line_kan(width, edges) -> KAN:
    """A KAN of symbolic ``"x"`` edges: ``edges[(l, i, j)] = (c, d)``, every other edge removed."""
    model = KAN(width, grid=5, dtype=DT)
    for l, layer in enumerate(model.layers):
        kinds = [["x" if (l, i, j) in edges else "" for i in range(layer.in_features)]
                 for j in range(layer.out_features)]  # fmt: skip
        layer.set_edges(kinds)
    for (l, i, j), (c, d) in edges.items():
        S.fix_symbolic(model, l, i, j, "x", affine=(1.0, 0.0, c, d))
    return model


def sine_problem():
    """test_symbolic's u'' = -π² sin(πx) on [-1, 1], with a hidden layer and fewer points."""
    return dataclasses.replace(
        symbolic_sine_problem(),
        model={"width": [1, 2, 1], "grid": 5},
        points={"interior": 50, "boundary": 2, "method": "grid", "test": 11},
    )


def penalty_reference(model: KAN, x: torch.Tensor, l1: float, entropy: float) -> float:
    """``Σ_l l1·Σ_ij n_ij - entropy·Σ_ij p_ij log p_ij`` with ``n_ij`` the mean |φ_ij| over
    ``x`` and ``p = n / Σ n``, in NumPy from the layers' own edge values (``layer.edges``)."""
    total, h = 0.0, x.detach()
    for layer in model.layers:
        with torch.no_grad():
            phi = layer.edges(h)[0].numpy()  # (N, n_in, n_out)
            h = layer(h)
        n = np.abs(phi).mean(0)
        p = n[n > 0] / n.sum()
        total += l1 * n.sum() - entropy * float((p * np.log(p)).sum())
    return total


# ---------------------------------------------------------------------------------------------
# Fitting: R², the "0" and "x" fits, the grid search's sampling, ranking
# ---------------------------------------------------------------------------------------------


def test_zero_fit_is_the_mean_and_explains_nothing():
    # The best constant is the mean, and its R² = 1 - Σ(y-ȳ)²/Σ(y-ȳ)² = 0 exactly; a "0" fit
    # through the first sample instead (d = y[0]) had R² = -Σ(ȳ-y₀)²N/SST < 0.
    x = np.linspace(0.0, 2.0, 300)
    y = np.exp(x)
    fit = S.fit_function(x, y, "0")
    assert fit.d == pytest.approx(float(np.mean(y)), rel=1e-14)
    assert fit.c == 0.0
    assert fit.r2 == pytest.approx(0.0, abs=1e-13)


def test_an_identically_zero_edge_is_fitted_exactly_by_zero():
    # All-zero samples: Σ(y-ȳ)² = 0 and the round-off tolerance is 0 too, so R² must come from
    # the "sst <= tol" branch (1 for an exact fit); "sst < tol" divided 0 by 0.
    x = np.linspace(-1, 1, 50)
    y = np.zeros_like(x)
    for name in ("0", "x"):
        assert S.fit_function(x, y, name).r2 == 1.0


def test_line_fit_off_centre_is_numpys_least_squares():
    # On x in [0, 2] (mean 1) the intercept of y ≈ c·x + d is ȳ - c·x̄: dropping the c·x̄ term
    # went unnoticed on the suite's symmetric samples (x̄ = 0). Reference: np.polyfit, and R²
    # of the best line = squared correlation.
    x = np.linspace(0.0, 2.0, 101)
    y = 3.0 * x + 1.0 + 0.2 * np.sin(5 * x)
    fit = S.fit_function(x, y, "x")
    c, d = np.polyfit(x, y, 1)
    assert (fit.a, fit.b) == (1.0, 0.0)
    np.testing.assert_allclose((fit.c, fit.d), (c, d), rtol=1e-12)
    assert fit.r2 == pytest.approx(np.corrcoef(x, y)[0, 1] ** 2, rel=1e-12)


def test_grid_search_samples_spread_over_sorted_inputs():
    # Inputs in grid order (the second coordinate of a 127 × 127 cartesian grid): 128 samples
    # picked by position rather than over the sorted values all fall on x = ±1, where every
    # (a, b) fits perfectly and the search learns nothing; the polish then started from the
    # corner of the search box and missed (1 - R² = 0.67 and 0.93). Sorted first, both are
    # found to round-off.
    t = np.linspace(-1, 1, 127)
    x = np.tile(t, 127)
    for name, f, params in (
        ("gaussian", lambda x: np.exp(-((3 * x - 0.5) ** 2)), (3.0, -0.5, 1.0, 0.0)),
        ("cos", lambda x: np.cos(6 * x + 0.2), (6.0, 0.2, 1.0, 0.0)),
    ):
        fit = S.fit_function(x, f(x), name)
        assert fit.r2 >= 1 - 1e-12, (name, fit)
        np.testing.assert_allclose(fit.affine, params, atol=1e-6)


def _spline_edge_model(target) -> KAN:
    """A [1, 1] KAN whose spline edge is the least-squares B-spline fit of ``target`` on X1."""
    model = KAN([1, 1], grid=10, dtype=DT)
    layer = model.layers[0]
    basis = layer.basis_values(X1)[:, 0, 0]  # (N, nb)
    with torch.no_grad():
        layer.scale_base.zero_()
        layer.scale_spline.fill_(1.0)
        sol = torch.linalg.lstsq(basis, target(X1), driver="gelsd").solution
        layer.coef[0, 0] = sol[:, 0]
    return model


def test_complexity_weight_trades_r2_for_simplicity_as_documented():
    # The edge ≈ sin(x) on [-1, 1]: "x" fits with 1 - R² ≈ 4e-3 (complexity 1), "sin" to
    # round-off (complexity 2). Score log10(1 - R²) + w·complexity: w = 1 picks sin, w = 10
    # picks x (the weight was once ignored, i.e. always 1).
    library = ["x", "sin"]
    for w in (0.0, 1.0, 10.0):
        model = _spline_edge_model(torch.sin)
        with torch.no_grad():
            y = model(X1)[:, 0].numpy()
        x = X1[:, 0].numpy()
        r2 = {"x": np.corrcoef(x, y)[0, 1] ** 2}  # best line: squared correlation
        r2["sin"] = S.fit_function(x, y, "sin").r2
        assert 1e-3 < 1 - r2["x"] < 1e-2 and 1 - r2["sin"] < 1e-8
        score = {n: math.log10(max(1 - r2[n], 1e-14)) + w * S.LIBRARY[n].complexity for n in r2}
        expected = min(score, key=score.get)
        chosen = S.auto_symbolic(model, X1, r2_threshold=0.99, library=library,
                                 complexity_weight=w)  # fmt: skip
        assert chosen[(0, 0, 0)].name == expected, (w, score)
        assert model.layers[0].edge_kinds() == [[expected]]
    assert expected == "x"  # w = 10


def test_equal_scores_prefer_the_higher_r2():
    # Both 1 - R² below the 1e-14 floor with equal complexity: the scores tie and the better
    # fit must win.
    fits = [S.Fit("sin", 1 - 4e-15, complexity=2), S.Fit("cos", 1.0, complexity=2)]
    for order in (fits, fits[::-1]):
        assert S._choose(order, 1.0).name == "cos"


def test_an_edge_kept_as_spline_reports_its_best_fit():
    # No candidate reaches R² 0.9999 on sin(3x): the edge stays a spline and the fit returned
    # for it is the best one, the line here (R² = corr(x, y)²), not the first of the library.
    model = _spline_edge_model(lambda x: torch.sin(3 * x))
    with torch.no_grad():
        y = model(X1)[:, 0].numpy()
    x = X1[:, 0].numpy()
    chosen = S.auto_symbolic(model, X1, r2_threshold=0.9999, library=["0", "x^2", "x"])
    fit = chosen[(0, 0, 0)]
    assert model.layers[0].edge_kinds() == [["spline"]]
    assert fit.name == "x"
    assert fit.r2 == pytest.approx(np.corrcoef(x, y)[0, 1] ** 2, rel=1e-12)


def test_later_layers_are_fitted_on_the_symbolic_earlier_layers():
    # [1, 1, 1] on x in [0, 1]: layer 0 is the spline x² (exact: cubic B-splines reproduce it),
    # made the line ĥ = c·x + d (R² = 15/16) by a library of "x" alone; layer 1, a random
    # spline g, must then be fitted on (ĥ, g(ĥ)), the values the symbolic layer 0 feeds it
    # (fitting the spline layer's (x², g(x²)) went unnoticed). Reference: NumPy least squares.
    torch.manual_seed(0)
    model = KAN([1, 1, 1], grid=5, dtype=DT)
    x = torch.linspace(0, 1, 201, dtype=DT).unsqueeze(1)
    first = model.layers[0]
    basis = first.basis_values(x)[:, 0, 0]
    with torch.no_grad():
        first.scale_base.zero_()
        first.scale_spline.fill_(1.0)
        # gelsd: basis functions vanishing on [0, 1] make the system rank-deficient
        first.coef[0, 0] = torch.linalg.lstsq(basis, x**2, driver="gelsd").solution[:, 0]
    g = copy.deepcopy(model.layers[1])
    chosen = S.auto_symbolic(model, x, r2_threshold=0.0, library=["x"])
    assert chosen[(0, 0, 0)].r2 == pytest.approx(15 / 16, abs=2e-3)  # x² vs x on [0, 1]
    with torch.no_grad():
        h = model.layers[0](x)  # the symbolic layer 0's output ĥ
        gh = g.edges(h)[0][:, 0, 0]
    h, gh = h[:, 0].numpy(), gh.numpy()
    c, d = np.polyfit(h, gh, 1)
    fit = chosen[(1, 0, 0)]
    np.testing.assert_allclose((fit.c, fit.d), (c, d), rtol=1e-9)
    assert fit.r2 == pytest.approx(np.corrcoef(h, gh)[0, 1] ** 2, rel=1e-12)


# ---------------------------------------------------------------------------------------------
# Edge scores, the penalty and its weights
# ---------------------------------------------------------------------------------------------


def test_edge_scores_are_the_mean_absolute_values():
    # An odd edge 0.8·x on symmetric samples has mean 0 but mean |φ| = 0.8·mean|x|; |mean φ|
    # scored it 0. mean|x| over linspace(-1, 1, 201) = Σ|x_k| / 201 = 101/201 (k/100, k ≤ 100).
    model = line_kan([1, 1], {(0, 0, 0): (0.8, 0.0)})
    (s,) = S.edge_scores(model, X1)
    assert float(s[0, 0]) == pytest.approx(0.8 * 101 / 201, rel=1e-14)


def test_penalized_uses_its_own_l1_and_entropy_weights():
    # Penalized(..., l1, entropy) must hand its weights to the default penalty (they were
    # replaced by the defaults 1 and 2). Reference: the penalty's formula in NumPy.
    problem = sine_problem()
    torch.manual_seed(0)
    model = KAN([1, 2, 1], grid=5, dtype=DT)
    res = Residuals(problem, model, problem.points, problem.weights, DT, "cpu")
    pen = S.Penalized(res, weight=0.1, l1=0.3, entropy=0.7)
    loss, terms = pen()
    ref = penalty_reference(model, res.interior.x, 0.3, 0.7)
    assert float(terms["sparsity"].detach()) == pytest.approx(ref, rel=1e-12)
    assert float(loss.detach()) == pytest.approx(float(res()[0].detach()) + 0.1 * ref, rel=1e-12)


def test_train_passes_the_penalty_weights_on():
    # symbolic.train(..., l1, entropy): the logged penalty before any step is the one with
    # those weights (train once dropped them for the defaults).
    problem = sine_problem()
    torch.manual_seed(0)
    model = KAN([1, 2, 1], grid=5, dtype=DT)
    trainer = S.train(problem, model, [{"adam": 0}], sparsity=1e-3, l1=0.25, entropy=0.0)
    logged = float(trainer.history.columns()["loss_sparsity"][0])  # step 0: before training
    ref = penalty_reference(model, trainer.residuals.interior.x, 0.25, 0.0)
    assert logged == pytest.approx(ref, rel=1e-12)


# ---------------------------------------------------------------------------------------------
# Symbolic edges and pruning
# ---------------------------------------------------------------------------------------------


def test_an_edge_given_another_function_starts_afresh():
    # "Edges found here with the same function keep their parameters": an edge made cos from
    # sin starts at (1, 0, 1, 0) (it inherited sin's parameters), the unchanged edge keeps its.
    model = KAN([2, 1], grid=5, dtype=DT)
    S.fix_symbolic(model, 0, 0, 0, "sin", affine=(2.0, 0.3, 0.5, 0.1))
    S.fix_symbolic(model, 0, 1, 0, "x^2", affine=(1.5, -0.2, 0.7, 0.4))
    layer = model.layers[0]
    layer.set_edges([["cos", "x^2"]])
    sym = layer.symbolic
    assert sym.affine[sym.row(0, 0)].tolist() == [1.0, 0.0, 1.0, 0.0]
    assert sym.affine[sym.row(0, 1)].tolist() == [1.5, -0.2, 0.7, 0.4]
    x = grid2(5)
    with torch.no_grad():
        ref = torch.cos(x[:, :1]) + 0.7 * (1.5 * x[:, 1:] - 0.2) ** 2 + 0.4
        torch.testing.assert_close(model(x), ref, rtol=0, atol=1e-14)


def test_prune_drops_a_node_whose_outgoing_edges_are_all_removed():
    # Node 1 passes node_threshold 0 (outgoing score 0.005·101/201 > 0) but its only outgoing
    # edge scores below edge_threshold 0.01 and goes: without a kept edge out it must go too
    # (it stayed, with its 4-parameter incoming edge feeding nothing).
    model = line_kan([1, 2, 1], {(0, 0, 0): (1.0, 0.0), (0, 0, 1): (1.0, 0.0),
                                 (1, 0, 0): (1.0, 0.0), (1, 1, 0): (0.005, 0.0)})  # fmt: skip
    pruned = S.prune(model, X1, edge_threshold=0.01, node_threshold=0.0)
    assert pruned.width == [1, 1, 1]
    assert count_parameters(pruned) == 8  # two "x" edges of four parameters
    # the removed edge's mean over X1 is 0: the output is x exactly
    torch.testing.assert_close(pruned(X1), X1, rtol=0, atol=1e-15)


def test_prune_carries_a_removed_constant_to_its_own_output():
    # [1, 2, 2] of "x" edges without biases; edge 1 -> 1 of the last layer is the constant
    # 0.005 (score 0.005 < 0.01: removed). Its mean goes to the d of a symbolic edge into
    # output 1 — it went to the first symbolic edge of the layer, into output 0.
    model = line_kan([1, 2, 2], {(0, 0, 0): (1.0, 0.0), (0, 0, 1): (2.0, 0.0),
                                 (1, 0, 0): (1.0, 0.0), (1, 1, 0): (1.0, 0.0),
                                 (1, 0, 1): (1.0, 0.0)})  # fmt: skip
    S.fix_symbolic(model, 1, 1, 1, "x", affine=(1.0, 0.0, 0.0, 0.005))
    pruned = S.prune(model, X1)
    assert pruned.width == [1, 2, 2]
    assert pruned.layers[1].edge_kinds() == [["x", "x"], ["x", ""]]
    x = X1[:, 0]
    expected = torch.stack([x + 2 * x, x + 0.005], 1)  # u₀ = y₀ + y₁, u₁ = y₀ + 0.005
    torch.testing.assert_close(pruned(X1), expected, rtol=0, atol=1e-15)


def test_prune_keeps_the_spline_order_and_grid_eps():
    # A KAN of spline order k = 2 and grid_eps = 1 (uniform grids in update_grid): the pruned
    # KAN was built with the defaults k = 3, grid_eps = 0.02 — another function, and other
    # grids after an update. With thresholds 0 nothing goes: the same function, the same grids.
    torch.manual_seed(0)
    model = KAN([2, 3, 1], grid=4, k=2, grid_eps=1.0, init_scale=0.5, dtype=DT)
    x = grid2(15)
    pruned = S.prune(model, x, edge_threshold=0.0, node_threshold=0.0)
    assert pruned.width == [2, 3, 1]
    assert all(layer.k == 2 and layer.grid_eps == 1.0 for layer in pruned.layers)
    with torch.no_grad():
        torch.testing.assert_close(pruned(x), model(x), rtol=0, atol=1e-14)
    model.update_grid(x)
    pruned.update_grid(x)
    for a, b in zip(pruned.layers, model.layers):
        torch.testing.assert_close(a.grid_points, b.grid_points, rtol=0, atol=1e-14)


def test_prune_keeps_frozen_parameters_frozen():
    torch.manual_seed(0)
    model = KAN([2, 3, 1], grid=5, dtype=DT)
    model.requires_grad_(False)
    pruned = S.prune(model, grid2(11), 0.0, 0.0)
    for layer in pruned.layers:
        for name in ("coef", "scale_base", "scale_spline"):
            assert not getattr(layer, name).requires_grad, name


# ---------------------------------------------------------------------------------------------
# Formulas
# ---------------------------------------------------------------------------------------------


def test_formula_names_many_inputs_from_one():
    # "x_1 … x_D when there are not enough" names: 1-based.
    model = line_kan([3, 1], {(0, 0, 0): (1.0, 0.0), (0, 1, 0): (2.0, 0.0), (0, 2, 0): (3.0, 0.0)})
    expr = S.formula(model, simplify=False)
    x1, x2, x3 = sympy.symbols("x_1 x_2 x_3")
    assert expr.free_symbols == {x1, x2, x3}
    assert sympy.expand(expr - (x1 + 2 * x2 + 3 * x3)) == 0


def test_rounding_tolerance_is_relative_for_large_coefficients():
    # "within 10^-digits (relative to max(1, |v|))": 1000.0004 is 4e-7 of 1000 from the
    # integer 1000, so it becomes exact (an absolute 1e-6 kept 1000.00).
    model = line_kan([1, 1], {(0, 0, 0): (1000.0004, 0.0)})
    expr = S.formula(model, ["x"], digits=6)
    assert expr == 1000 * sympy.Symbol("x")
    assert not expr.atoms(sympy.Float)


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def test_cli_r2_bounds_are_the_half_open_unit_interval(tmp_path, capsys):
    # --r2 in (0, 1]: 0 is refused and 1 accepted (the check comes before the file is read).
    missing = str(tmp_path / "none.h5")
    assert main(["symbolic", missing, "--r2", "0"]) == 2
    assert capsys.readouterr().err.strip() == "kanpde: error: --r2 0.0: must be in (0, 1]"
    assert main(["symbolic", missing, "--r2", "1"]) == 2  # fails on the missing file only
    err = capsys.readouterr().err
    assert "--r2" not in err and "none.h5" in err


def test_cli_prune_thresholds_default_to_one_hundredth(tmp_path, capsys, monkeypatch):
    # "--edge-threshold … (default 0.01)", "--node-threshold … (default 0.01)": the values
    # handed to prune.
    run = kanpde.solve(str(ROOT / "problems" / "poisson1d.py"), out=tmp_path / "run",
                       schedule="3:adam=2", points={"interior": 20}, progress=False,
                       device="cpu")  # fmt: skip
    seen = []

    def fake_prune(model, x, edge_threshold, node_threshold):
        seen.append((edge_threshold, node_threshold))
        raise ValueError("stop here")

    monkeypatch.setattr(S, "prune", fake_prune)
    assert main(["symbolic", str(run.path), "--prune"]) == 2
    assert "stop here" in capsys.readouterr().err
    assert seen == [(0.01, 0.01)]


# ---------------------------------------------------------------------------------------------
# Schedules
# ---------------------------------------------------------------------------------------------


def test_string_schedule_allows_spaces_around_its_parts():
    # Grid and steps already take surrounding spaces (int(" 5")); so must optimizer names.
    stages = parse_schedule("5: adam = 10 + lbfgs = 3 , 10 : lbfgs=4")
    assert [(s.optimizer, s.steps, s.grid) for s in stages] == [
        ("adam", 10, 5),
        ("lbfgs", 3, None),
        ("lbfgs", 4, 10),
    ]


def test_negative_update_until_is_refused_with_update_grid():
    # The suite's case lacked update_grid, so another message answered it.
    for schedule in ([{"adam": 10, "update_grid": 2, "update_until": -3}],):
        with pytest.raises(ScheduleError, match="update_until must be a non-negative integer"):
            parse_schedule(schedule)
    with pytest.raises(ScheduleError, match="update_until must be a non-negative integer"):
        Stage("adam", 10, update_grid=2, update_until=-1)


def test_cli_digits_and_simplify_seconds_zero_mean_none(tmp_path, capsys):
    # "--digits … 0: do not [round]", "--simplify-seconds … 0: no limit": passed on as 0 they
    # rounded every coefficient to within 1 (3.0001234 became 3) and refused the formula.
    # The printed formula of a symbolic run then evaluates like the model to round-off.
    torch.manual_seed(0)
    model = KAN([1, 1], grid=5, dtype=DT)
    S.fix_symbolic(model, 0, 0, 0, "sin", affine=(3.0001234, 0.1234567, 0.98765432, 0.0123457))
    with warnings.catch_warnings():  # an untrained (0-step) run may be warned about
        warnings.simplefilter("ignore", kanpde.KanpdeWarning)
        run = kanpde.solve(sine_problem(), model=model, schedule="lbfgs=0",
                           out=tmp_path / "run", progress=False, device="cpu")  # fmt: skip
    capsys.readouterr()
    args = ["symbolic", str(run.path), "--digits", "0", "--simplify-seconds", "0", "--quiet"]
    assert main(args) == 0
    text = capsys.readouterr().out.strip()
    x = sympy.Symbol("x")
    f = sympy.lambdify(x, sympy.sympify(text, locals={"x": x}), "numpy")
    with torch.no_grad():
        ref = kanpde.load(run.path).model()(X1)[:, 0].numpy()
    np.testing.assert_allclose(f(X1[:, 0].numpy()), ref, rtol=0, atol=1e-12)


def test_near_constant_data_is_not_taken_for_constant():
    # R² treats data as constant only up to round-off: Σ(y-ȳ)² ≤ N·(1e-12·max|y|)². Data of
    # relative variation 1e-7 is no constant, so the best constant explains none of it
    # (R² = 0) and sin(3x) all of it (a tolerance of 1e-6·max|y| gave "0" R² = 1).
    x = np.linspace(-1, 1, 400)
    y = 5.0 + 5e-7 * np.sin(3 * x)
    assert S.fit_function(x, y, "0").r2 == pytest.approx(0.0, abs=1e-12)
    assert S.fit_function(x, y, "sin").r2 >= 1 - 1e-6

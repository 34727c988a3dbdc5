"""KAN-vs-MLP comparisons and grid sweeps: same points, same budget, consistent outputs."""

import csv
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import kanpde
from kanpde.compare import _matching_width, compare, fitted_slope, mlp_schedule, sweep
from kanpde.nn import MLP, count_parameters

ROOT = Path(__file__).resolve().parents[1]
POISSON = str(ROOT / "problems" / "poisson2d.py")
SMALL = {"interior": 120, "boundary": 40, "method": "sobol", "test": 11}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    problem = kanpde.load_problem(POISSON)
    problem.points = {**problem.points, **SMALL}
    out = tmp_path_factory.mktemp("cmp")
    result = compare(
        problem, kans=[[2, 3, 1]], mlps=[[2, 8, 1]], seeds=2, steps=12, device="cpu", out=out
    )
    return problem, result, out


def test_same_points_budget_and_counts(study):
    problem, result, out = study
    runs = result.runs
    assert len(result.rows) == 4
    # Every run trained on the same collocation points with the same step budget.
    points = {json for json in (str(r.config["points"]) for r in runs.values())}
    assert len(points) == 1
    assert {r["steps"] for r in result.rows} == {12}
    # The reported parameter counts are count_parameters of the trained models.
    for (label, _), run in runs.items():
        row = next(r for r in result.rows if r["model"] == label)
        assert row["params"] == count_parameters(run.model())
    assert result.setup["mlp_schedule"][0]["optimizer"] == "adam"
    assert sum(s["steps"] for s in result.setup["mlp_schedule"]) == 12


def test_table_matches_saved_files(study):
    _, result, out = study
    with open(out / "comparison.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(result.rows)
    for saved, row in zip(rows, result.rows):
        assert saved["model"] == row["model"]
        assert float(saved["mse"]) == pytest.approx(row["mse"], rel=1e-12)
    with h5py.File(out / "comparison.h5") as f:
        np.testing.assert_allclose(f["rows/mse"][()], [r["mse"] for r in result.rows], rtol=0)
    md = (out / "comparison.md").read_text()
    for e in result.summary():
        assert f"{e['mse']:.2e}" in md and e["model"] in md


def test_same_seeds_reproduce(study):
    problem, result, _ = study
    again = compare(problem, kans=[[2, 3, 1]], mlps=[[2, 8, 1]], seeds=2, steps=12, device="cpu")
    assert [r["mse"] for r in again.rows] == [r["mse"] for r in result.rows]


def test_median_and_range(study):
    _, result, _ = study
    for e in result.summary():
        v = [r["mse"] for r in result.rows if r["model"] == e["model"]]
        assert e["mse"] == pytest.approx(float(np.median(v)))
        assert e["mse_min"] == min(v) and e["mse_max"] == max(v)


def test_matching_width_has_about_as_many_parameters():
    for params in (300, 750, 2000):
        h = _matching_width(params, 2, 1)
        got = count_parameters(MLP([2, h, h, 1]))
        assert abs(got - params) <= 2 * h + 4  # the nearest width


def test_mlp_recipe_splits_steps():
    stages = mlp_schedule(400)
    assert [(s.optimizer, s.steps) for s in stages] == [("adam", 100), ("lbfgs", 300)]


def test_fitted_slope_recovers_power_law():
    g = np.array([3, 5, 10, 20, 50])
    assert fitted_slope(g, 7.0 * g**-4.0) == pytest.approx(-4.0, abs=1e-12)


def test_sweep_staircase_and_slope(tmp_path):
    problem = kanpde.load_problem(POISSON)
    problem.points = {**problem.points, **SMALL}
    torch.manual_seed(0)
    s = sweep(problem, grids=[3, 6], steps=8, device="cpu", out=tmp_path)
    assert len(s.extension) == len(s.separate) == 2
    assert all(math.isfinite(v) and v > 0 for v in s.extension + s.separate)
    assert s.slope_extension == pytest.approx(fitted_slope([3, 6], s.extension))
    assert (tmp_path / "sweep.csv").exists() and (tmp_path / "extension.h5").exists()
    grids = set(s.run.history["grid"].tolist())
    assert grids == {3.0, 6.0}


def test_bad_arguments():
    with pytest.raises(ValueError, match="budget"):
        compare(POISSON, budget="epochs")
    with pytest.raises(ValueError, match="--seconds"):
        compare(POISSON, budget="seconds")
    with pytest.raises(ValueError, match="does not fit"):
        compare(POISSON, kans=[[3, 5, 1]], mlps=[], seeds=1, steps=1)
    with pytest.raises(ValueError, match="increasing"):
        sweep(POISSON, grids=[10, 5])


def test_training_curves_from_the_saved_file(study):
    from kanpde import plot
    from kanpde.compare import _figures

    problem, result, out = study
    fig = plot.curves(out / "comparison.h5")
    loss_ax, err_ax = fig.axes[:2]
    # one line per model and seed, each the saved history of that run
    assert len(loss_ax.lines) == len(err_ax.lines) == len(result.rows) == 4
    run = result.runs[("KAN [2,3,1]", 0)]
    (line,) = [ln for ln in loss_ax.lines if ln.get_label() == "KAN [2,3,1]"]
    np.testing.assert_array_equal(line.get_ydata(), run.history["loss"])
    assert loss_ax.get_yscale() == "log" and err_ax.get_xlabel() == "optimizer step"
    # the same figure from the in-memory comparison
    assert len(plot.curves(result).axes[0].lines) == 4
    paths = _figures(result, out)
    assert [p.name for p in paths] == ["comparison.png", "curves.png"]
    with pytest.raises(ValueError, match="file not found"):
        plot.curves(out / "nope.h5")

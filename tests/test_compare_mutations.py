"""Comparison tables, schedule scaling and sweep tables against hand arithmetic (mutation audit).

Each test pins a behaviour of ``kanpde/compare.py`` that a plausible one-line change left the
rest of the suite passing. Studies are built from hand-made rows (no training): medians are
worked out by sorting (three seeds, so median and mean differ), step apportionment against
the largest-remainder method, grid-update counts against the trainer's rule counted step by
step, and timed runs by the arguments handed to the trainer.
"""

from __future__ import annotations

import csv
import json
import math
import random
from types import SimpleNamespace

import h5py
import numpy as np
import pytest

from kanpde.compare import (
    COLUMNS,
    Comparison,
    Sweep,
    _period,
    _row,
    _scaled,
    _updates,
    fitted_slope,
    mlp_schedule,
    solve_timed,
)
from kanpde.schedule import Stage, parse_schedule

# ------------------------------------------------------------------------ hand-made studies

# Three KAN seeds whose values are skewed, so the median (the middle of the sorted three)
# differs from the mean, and two MLP seeds; every value is a dyadic fraction or a small
# decimal written out below, so the expected medians are exact.
KAN = "KAN [1,5,1]"
MLP = "MLP [1,8,8,1]"


def _kan_row(seed, mse, rel, err, t, sps, loss, u, v, k, c):
    return {"model": KAN, "width": "1-5-1", "grid": 10, "params": 100, "seed": seed,
            "mse": mse, "rel_l2": rel, "max_err": err, "train_time": t, "steps": 40,
            "evals": 90, "steps_per_s": sps, "loss": loss, "nonfinite": 0, "stopped": 0,
            "rel_l2_u": u, "rel_l2_v": v, "param_k": k, "param_c": c}  # fmt: skip


def _mlp_row(seed, u, v, k, c):
    return {"model": MLP, "width": "1-8-8-1", "grid": 0, "params": 97, "seed": seed,
            "mse": 0.5, "rel_l2": 0.25, "max_err": 1.0, "train_time": 0.5, "steps": 40,
            "evals": 80, "steps_per_s": 7.0, "loss": 0.125, "nonfinite": 0, "stopped": 0,
            "rel_l2_u": u, "rel_l2_v": v, "param_k": k, "param_c": c}  # fmt: skip


def _rows():
    return [
        _kan_row(0, 1e-4, 1e-2, 3e-2, 1.0, 10.0, 1e-6, 0.1, 0.5, 2.0, -1.0),
        _kan_row(1, 9e-4, 3e-2, 9e-2, 6.0, 60.0, 9e-6, 0.2, 0.3, 1.0, -3.0),
        _kan_row(2, 4e-4, 2e-2, 6e-2, 2.0, 20.0, 4e-6, 0.9, 0.6, 9.0, 5.0),
        _mlp_row(0, 0.25, 0.5, 3.0, 0.5),
        _mlp_row(1, 0.75, 1.0, 5.0, 1.5),
    ]


def _untested(rows):
    """The rows of a problem without a test solution: NaN test errors."""
    return [{**r, "mse": math.nan, "rel_l2": math.nan, "max_err": math.nan} for r in rows]


def _cells(line):
    """The cells of a markdown table line ``| a | b |``."""
    assert line.startswith("|") and line.endswith("|"), line
    return [c.strip() for c in line[1:-1].split("|")]


def test_summary_takes_each_outputs_and_unknowns_median_and_range_over_seeds():
    """Per model, each output's rel. L2 and each unknown is the median over seeds (the middle
    of three sorted values; the mean of the two middle ones for two), with the unknowns' min
    and max (catches: np.mean for np.median in rel_l2_outputs or unknowns, unknowns_min and
    unknowns_max swapped or both the same extreme)."""
    kan, mlp = Comparison("p", _rows(), {}).summary()
    # u: sorted (0.1, 0.2, 0.9) -> 0.2 (mean 0.4); v: (0.3, 0.5, 0.6) -> 0.5 (mean 0.466...)
    assert kan["rel_l2_outputs"] == {"u": 0.2, "v": 0.5}
    # k: sorted (1, 2, 9) -> 2 (mean 4); c: (-3, -1, 5) -> -1 (mean 1/3)
    assert kan["unknowns"] == {"k": 2.0, "c": -1.0}
    assert kan["unknowns_min"] == {"k": 1.0, "c": -3.0}
    assert kan["unknowns_max"] == {"k": 9.0, "c": 5.0}
    # two seeds: (0.25 + 0.75) / 2, (0.5 + 1) / 2, (3 + 5) / 2, (0.5 + 1.5) / 2
    assert mlp["rel_l2_outputs"] == {"u": 0.5, "v": 0.75}
    assert mlp["unknowns"] == {"k": 4.0, "c": 1.0}
    assert (mlp["unknowns_min"], mlp["unknowns_max"]) == (
        {"k": 3.0, "c": 0.5},
        {"k": 5.0, "c": 1.5},
    )
    # the final loss too: sorted (1e-6, 4e-6, 9e-6) -> 4e-6
    assert (kan["loss"], kan["loss_min"], kan["loss_max"]) == (4e-6, 1e-6, 9e-6)
    # and all of it agrees with NumPy's median of the columns
    for name in ("k", "c"):
        assert kan["unknowns"][name] == np.median([r[f"param_{name}"] for r in _rows()[:3]])


def test_markdown_of_a_system_with_unknowns_is_one_well_formed_table():
    """Header, rule and every row have the same number of cells: the unknowns' columns are in
    the rule too; each output's median rel. L2 follows the joint rel. L2 in its own cell; an
    unknown reads median [min–max] (catches: the rule without the unknowns' columns, the
    per-output figures attached to the MSE cell, min and max swapped in the unknowns' cells)."""
    lines = Comparison("p", _rows(), {}).markdown().splitlines()
    assert lines[0] == (
        "| model | params | test MSE | rel. L2 | max err | train time (s) | steps/s | k | c |"
    )
    assert lines[1] == "|---|---:|---|---|---|---|---:|---|---|"
    assert lines[2] == (
        "| KAN [1,5,1] | 100 | 4.00e-04 [1.00e-04–9.00e-04] | "
        "2.00e-02 [1.00e-02–3.00e-02] (u 2.0e-01, v 5.0e-01) | 6.00e-02 [3.00e-02–9.00e-02] | "
        "2.0 [1.0–6.0] | 20.0 | 2 [1–9] | -1 [-3–5] |"
    )
    assert lines[3] == (
        "| MLP [1,8,8,1] | 97 | 5.00e-01 [5.00e-01–5.00e-01] | "
        "2.50e-01 [2.50e-01–2.50e-01] (u 5.0e-01, v 7.5e-01) | 1.00e+00 [1.00e+00–1.00e+00] | "
        "0.5 [0.5–0.5] | 7.0 | 4 [3–5] | 1 [0.5–1.5] |"
    )
    # three KAN seeds and two MLP ones: a note under the table says so
    assert lines[4:] == ["", "runs per model differ: KAN [1,5,1] 3, MLP [1,8,8,1] 2"]
    assert {len(_cells(line)) for line in lines[:4]} == {9}


def test_markdown_without_test_errors_has_the_final_loss_column_and_a_matching_rule():
    """A problem without a test solution: model, params, final loss, train time, steps/s and
    the unknowns, five plus two columns in header, rule and rows, the rule right-aligning
    params and steps/s (catches: a rule of the test-error table's alignment)."""
    lines = Comparison("p", _untested(_rows()), {}).markdown().splitlines()
    assert lines[0] == "| model | params | final loss | train time (s) | steps/s | k | c |"
    assert lines[1] == "|---|---:|---|---|---:|---|---|"
    assert lines[2] == (
        "| KAN [1,5,1] | 100 | 4.00e-06 [1.00e-06–9.00e-06] | 2.0 [1.0–6.0] | 20.0 | "
        "2 [1–9] | -1 [-3–5] |"
    )
    assert {len(_cells(line)) for line in lines[:4]} == {7}
    # without unknowns: five columns
    plain = [{k: v for k, v in r.items() if not k.startswith("param_")} for r in _rows()]
    lines = Comparison("p", _untested(plain), {}).markdown().splitlines()
    assert lines[:2] == ["| model | params | final loss | train time (s) | steps/s |",
                         "|---|---:|---|---|---:|"]  # fmt: skip
    assert {len(_cells(line)) for line in lines[:4]} == {5}


def test_a_study_is_tested_if_any_run_has_a_test_error():
    """``tested`` means the rows hold test errors: one run without a finite rel. L2 (e.g. one
    that diverged) leaves the others' errors in the table; only a study none of whose rows
    has one compares losses; a study with no rows yet starts with the test-error header
    (catches: all() for any(), and the empty study written with the final-loss header)."""
    rows = _rows()
    rows[1] = {**rows[1], "mse": math.nan, "rel_l2": math.nan, "max_err": math.nan}
    study = Comparison("p", rows, {})
    assert study.tested
    assert study.markdown().splitlines()[0].startswith("| model | params | test MSE | rel. L2 |")
    assert not Comparison("p", _untested(_rows()), {}).tested
    empty = Comparison("p", [], {"seeds": 1})
    assert not empty.tested and empty.summary() == []
    assert empty.markdown() == (
        "| model | params | test MSE | rel. L2 | max err | train time (s) | steps/s |\n"
        "|---|---:|---|---|---|---|---:|\n\n"
    )


# ---------------------------------------------------------------------------- saved tables


def test_saved_tables_round_trip_every_column_in_order(tmp_path):
    """comparison.csv and comparison.h5 hold COLUMNS, then the outputs' rel_l2_*, then the
    unknowns' param_* columns, in the rows' order; the file reads back to equal rows of plain
    Python numbers and strings, and the same markdown (catches: the param_* columns left out of
    the files, the extra columns in another order, NumPy scalars in the loaded rows)."""
    rows = _rows()
    Comparison("p", rows, {"seeds": 3, "steps": 40}).save(tmp_path)
    expected = COLUMNS + ["rel_l2_u", "rel_l2_v", "param_k", "param_c"]
    with open(tmp_path / "comparison.csv", newline="") as f:
        reader = csv.DictReader(f)
        table = list(reader)
    assert reader.fieldnames == expected
    for saved, row in zip(table, rows, strict=True):
        assert saved["model"] == row["model"] and int(saved["params"]) == row["params"]
        # Python writes the shortest repr of a float: it reads back exactly
        for k in expected[5:]:
            assert float(saved[k]) == row[k], k
    with h5py.File(tmp_path / "comparison.h5") as f:
        assert json.loads(f["rows"].attrs["columns"]) == expected
        np.testing.assert_array_equal(f["rows/param_k"][()], [r["param_k"] for r in rows])
    back = Comparison.load(tmp_path, runs=False)
    assert back.problem == "p" and back.setup == {"seeds": 3, "steps": 40}
    assert back.rows == rows
    for got, row in zip(back.rows, rows):
        assert list(got) == list(row)  # the column order survives
        assert all(type(got[k]) is type(row[k]) for k in row), got  # int, float, str
    json.dumps(back.rows)  # plain Python values (a NumPy int64 is not JSON)
    assert back.markdown() == Comparison("p", rows, {}).markdown()
    assert (tmp_path / "comparison.md").read_text() == back.markdown()


def test_a_study_saved_before_loss_was_a_column_round_trips_without_it(tmp_path):
    """Rows without "loss" (older studies) are saved without that column, load back without
    it, and summarise their loss as NaN; every other column of COLUMNS is written."""

    def old(k):
        return k in ("loss", "nonfinite", "stopped") or k.startswith(("rel_l2_", "param_"))

    rows = [{k: v for k, v in r.items() if not old(k)} for r in _rows()]
    Comparison("p", rows, {}).save(tmp_path)
    with open(tmp_path / "comparison.csv", newline="") as f:
        later = ("loss", "nonfinite", "stopped")  # also missing in studies before them
        assert csv.DictReader(f).fieldnames == [c for c in COLUMNS if c not in later]
    back = Comparison.load(tmp_path, runs=False)
    assert back.rows == rows
    assert all(math.isnan(e["loss"]) for e in back.summary())


# -------------------------------------------------------------------------------- rows


def _fake_run(grids, **metrics):
    m = {"parameters": 100, "mse": 1e-4, "rel_l2": 1e-2, "max_err": 3e-2, "train_time": 2.0,
         "steps": 40, "evals": 90, "loss": 1e-6, **metrics}  # fmt: skip
    return SimpleNamespace(metrics=m, history={"grid": np.asarray(grids, float)}, events=[])


def test_a_row_has_the_grid_the_run_ended_on_and_its_steps_per_second():
    """A KAN row's grid is the last logged grid (grid extension 5 -> 10 -> 20: 20), an MLP's
    0; steps/s is steps over training time (40 / 2 = 20, not evaluations 90 / 2); the extra
    rel_l2_* and param_* metrics follow the columns."""
    row = _row("kan", [1, 5, 1], 3, _fake_run([5, 5, 10, 20], rel_l2_u=0.5, param_k=1.5))
    assert (row["model"], row["width"], row["seed"]) == ("KAN [1,5,1]", "1-5-1", 3)
    assert row["grid"] == 20 and type(row["grid"]) is int
    assert row["steps_per_s"] == 20.0
    assert list(row)[:15] == COLUMNS and list(row)[15:] == ["rel_l2_u", "param_k"]
    assert (row["nonfinite"], row["stopped"]) == (0, 0)
    assert (row["rel_l2_u"], row["param_k"]) == (0.5, 1.5)
    assert _row("mlp", [1, 8, 8, 1], 0, _fake_run([0, 0]))["grid"] == 0
    # a problem without a test solution: NaN errors
    run = _fake_run([5])
    for k in ("mse", "rel_l2", "max_err"):
        del run.metrics[k]
    row = _row("kan", [1, 5, 1], 0, run)
    assert all(math.isnan(row[k]) for k in ("mse", "rel_l2", "max_err"))


# ------------------------------------------------------------------------ scaled schedules


def _lbfgs(*steps):
    return parse_schedule([{"lbfgs": s} for s in steps])


def test_scaled_step_counts_follow_the_largest_remainder_method():
    """Scaling stages of s_i steps to N: e_i = s_i N / Σs; a stage with steps gets ⌊e_i⌋, at
    least 1, and the N − Σ those steps left go one each to the stages with the largest
    remainders e_i − ⌊e_i⌋ (none to a stage raised to its one step). When the raised stages
    overspend N, steps are taken back one at a time from stages above one step, where the
    count stays closest to e_i: the counts add up to N unless N is below the number of stages
    with steps. Checked on random schedules (catches: smallest remainders first, a raised
    stage taking a remainder, a negative count of steps left slicing off the end, an
    overspent N)."""
    rng = random.Random(1)
    for _ in range(400):
        steps = [rng.choice([0, 1, 2, 3, 7, 50, 130, 999]) for _ in range(rng.randint(1, 6))]
        if not any(steps):
            continue
        n = rng.randint(1, 3 * sum(steps))
        factor = n / sum(steps)
        exact = [s * factor for s in steps]
        counts = [s.steps for s in _scaled(_lbfgs(*steps), factor)]
        base = [max(1, math.floor(e)) if s else 0 for s, e in zip(steps, exact)]
        free = [i for i, (s, e) in enumerate(zip(steps, exact)) if s and math.floor(e) >= 1]
        assert sum(counts) == max(n, sum(1 for s in steps if s)), (steps, n, counts)
        assert all(c >= 1 for c, s in zip(counts, steps) if s), (steps, n, counts)
        if sum(base) > n:  # overspent: only taken back, never below one step
            assert all(c <= b for c, b in zip(counts, base)), (steps, n, counts)
            continue
        raised = [i for i in range(len(steps)) if counts[i] != base[i]]
        assert all(counts[i] == base[i] + 1 and i in free for i in raised), (steps, n, counts)
        rest = [i for i in free if i not in raised]
        if raised and rest:  # every one given a step has a remainder as large as the others'
            low = min(exact[i] - math.floor(exact[i]) for i in raised)
            high = max(exact[i] - math.floor(exact[i]) for i in rest)
            assert low >= high - 1e-9, (steps, n, counts)
    # two 1-step stages raised to one step overspend N = 4; the three 130-step stages (1.33
    # each) keep their one step each: 5 stages cannot run in 4 steps
    assert [s.steps for s in _scaled(_lbfgs(1, 1, 130, 130, 130), 4 / 392)] == [1] * 5
    # N = 5 over (1, 1, 1000, 1000): 1 + 1 + 2.5 + 2.5 rounds to 6 steps; one is taken back
    assert sum(s.steps for s in _scaled(_lbfgs(1, 1, 1000, 1000), 5 / 2002)) == 5
    # ten 1-step stages and one of 1000 in N = 12: the big stage gives back all but 2
    assert [s.steps for s in _scaled(_lbfgs(*[1] * 10, 1000), 12 / 1010)] == [1] * 10 + [2]


def test_grid_update_count_is_the_trainers_rule_counted_step_by_step():
    """A stage of ``steps`` steps updates its grid at its start and before step i when
    0 < i <= until and period | i (steps i = 0 .. steps − 1): _updates is that count."""
    for steps in range(1, 30):
        for period in range(1, 32):
            for until in range(0, 32):
                due = [i for i in range(1, steps) if i % period == 0 and i <= until]
                assert _updates(steps, period, until) == 1 + len(due), (steps, period, until)
    assert _updates(10, 0, 5) == 0  # no period: no updates


def test_a_scaled_stage_updates_its_grid_as_nearly_as_often_as_before():
    """The scaled stage's period gives the number of updates closest to the original stage's
    over every possible period, its window lies inside the stage, and a stage that updated
    once updates once (period steps + 1) (catches: a once-only stage given a periodic update,
    an update window past the scaled stage's end)."""
    rng = random.Random(2)
    for _ in range(300):
        steps = rng.randint(2, 120)
        stage = Stage("lbfgs", steps, update_grid=rng.randint(1, steps + 1),
                      update_until=rng.randint(0, steps))  # fmt: skip
        factor = rng.choice([0.05, 0.3, 0.5, 1.7, 3.0])
        (new,) = _scaled([stage], factor)
        old = _updates(stage.steps, stage.update_grid, stage.update_until)
        assert 0 <= new.update_until <= new.steps
        got = _updates(new.steps, new.update_grid, new.update_until)
        if old <= 1 or min(new.update_until, new.steps - 1) < 1:
            assert new.update_grid == new.steps + 1 and got == 1, (stage, new)
            continue
        best = min(abs(_updates(new.steps, p, new.update_until) - old)
                   for p in range(1, new.steps + 2))  # fmt: skip
        assert abs(got - old) == best, (stage, new)
    # a 10-step stage updating up to its end (until 10), scaled by 0.35 beside a 20-step one:
    # 3.5 steps get 3 (the other stage's 7.0 takes no remainder), so the window ends at 3,
    # not round(3.5) = 4
    a, _ = _scaled([Stage("lbfgs", 10, update_grid=2, update_until=10), Stage("lbfgs", 20)], 0.35)
    assert (a.steps, a.update_until) == (3, 3)


def test_a_stage_that_updated_once_or_never_keeps_that_when_scaled():
    """_period returns steps + 1 (one update, at the start) for a stage that updated once, and
    0 (no update) for one that never did: scaling adds no grid update (catches: a stage
    without updates given one at its start, which refits its grid)."""
    stage = Stage("lbfgs", 40, update_grid=30, update_until=20)  # updates at 0 only
    assert _updates(40, 30, 20) == 1
    assert _period(stage, 100, 50) == 101
    for factor in (0.1, 0.5, 2.0, 10.0):
        for new in _scaled(_lbfgs(40, 7, 1), factor):
            assert new.update_grid == 0 and _updates(new.steps, new.update_grid, 0) == 0


# ------------------------------------------------------------------------------ timed runs


def test_the_mlp_recipe_takes_its_learning_rate_and_adam_fraction():
    """mlp_schedule(N, f, lr): Adam at ``lr`` for round(f N) steps, then L-BFGS (at its own
    rate 1) for the rest (catches: ``lr`` not handed to the Adam stage, which the default
    1e-3, Adam's own default, hides)."""
    adam, lbfgs = mlp_schedule(10, adam_fraction=0.5, lr=5e-3)
    assert (adam.optimizer, adam.steps, adam.lr) == ("adam", 5, 5e-3)
    assert (lbfgs.optimizer, lbfgs.steps, lbfgs.lr) == ("lbfgs", 5, 1.0)
    # 0.3 · 9 = 2.7 rounds to 3 Adam steps
    assert [s.steps for s in mlp_schedule(9, adam_fraction=0.3, lr=2e-2)] == [3, 6]
    assert mlp_schedule(9, adam_fraction=0.3, lr=2e-2)[0].lr == 2e-2


def test_a_timed_run_shares_the_seconds_in_proportion_to_the_stages_steps(monkeypatch):
    """solve_timed hands the trainer the whole budget as max_seconds, time shares equal to
    the stages' steps (so stage i gets seconds · s_i / Σs while all remain), and each stage
    1000 times its steps to spend its share in (catches: equal shares, nominal step caps)."""
    import kanpde.training

    seen = {}
    monkeypatch.setattr(kanpde.training, "solve", lambda problem, **kw: seen.update(kw) or "run")
    stages = [Stage("adam", 2, grid=5), Stage("lbfgs", 3, grid=10), Stage("lbfgs", 5, grid=20)]
    assert solve_timed("problem", {"type": "kan"}, stages, 7.5, out=None, seed=4) == "run"
    assert seen["max_seconds"] == 7.5 and seen["seed"] == 4 and seen["checkpoint_every"] == 0
    shares = np.asarray(seen["time_shares"], float)
    np.testing.assert_allclose(7.5 * shares / shares.sum(), [1.5, 2.25, 3.75], rtol=1e-15)
    assert [s.steps for s in seen["schedule"]] == [2000, 3000, 5000]
    assert [s.grid for s in seen["schedule"]] == [5, 10, 20]


# ---------------------------------------------------------------------------------- sweeps


def test_sweep_table_has_a_row_per_grid_with_each_unknown_from_its_own_run():
    """A Sweep made without ``stalled`` still has one row per grid, and an unknown's columns
    are the extension run's value, then the separate run's, at each G. Errors 10⁻² G⁻³·³²…
    are a power law: the slope through (3, 1e-2), (6, 1e-3) is log(1/10) / log 2 = −3.32
    (catches: the padding of stalled dropped, emptying the table; the two runs' unknowns
    swapped)."""
    slope = math.log(0.1) / math.log(2)
    assert fitted_slope([3, 6], [1e-2, 1e-3]) == pytest.approx(slope, rel=1e-12)
    s = Sweep("p", [3, 6], [1e-2, 1e-3], [2e-2, 2e-3], slope, slope,
              unknowns={"k": {"extension": [1.5, 1.25], "separate": [1.75, 1.125]}})  # fmt: skip
    assert s.markdown().splitlines() == [
        "| G | RMSE (grid extension) | RMSE (trained at G) | k (extension) | k (trained at G) |",
        "|---:|---|---|---|---|",
        "| 3 | 1.000e-02 | 2.000e-02 | 1.5 | 1.75 |",
        "| 6 | 1.000e-03 | 2.000e-03 | 1.25 | 1.125 |",
        "",
        "fitted slope of log RMSE vs log G: -3.32 (extension), -3.32 (separate); "
        "degree-3 spline theory: -4",
    ]


def test_fitted_slope_is_the_least_squares_slope_of_the_logs():
    """fitted_slope equals np.polyfit of log e on log G, is unchanged by a constant factor
    and by the base of the logarithm, and recovers −(k + 1) from e = C G^−(k+1)."""
    g = np.array([3.0, 5.0, 10.0, 20.0, 50.0, 100.0])
    noise = np.array([1.0, 1.3, 0.7, 1.1, 0.95, 1.2])
    e = 0.3 * g**-3.0 * noise
    ref = np.polyfit(np.log10(g), np.log10(e), 1)[0]
    assert fitted_slope(g, e) == pytest.approx(ref, rel=1e-12)
    assert fitted_slope(g, 1e5 * e) == pytest.approx(ref, rel=1e-12)
    assert fitted_slope(list(g), list(2.0 * g**-4.0)) == pytest.approx(-4.0, abs=1e-12)


def test_a_resume_refusal_names_options_not_raw_keys():
    from pathlib import Path

    from kanpde.cli import CLIError
    from kanpde.compare import _same_settings

    out = Path("study")
    with pytest.raises(CLIError) as e:
        _same_settings(out, {"problem": "wave1d", "problem_hash": "a", "device": "cpu"},
                       {"problem": "poisson1d", "problem_hash": "b", "device": "cpu"})  # fmt: skip
    assert str(e.value) == (
        "--resume study: the study was started with other settings (the problem (another "
        "problem file); the problem file (or a module it imports)); give the problem file and "
        "options it was started with"
    )
    with pytest.raises(CLIError) as e:  # time_split comes with --budget seconds
        _same_settings(
            out, {"budget": "steps", "device": "cpu"},
            {"budget": "seconds", "time_split": "shares", "device": "cpu"},
        )  # fmt: skip
    assert "(--budget: steps there, seconds here)" in str(e.value)


def test_runs_that_ended_before_the_step_budget_are_noted_under_the_table():
    # an L-BFGS stage that converged early left its run short of the budget, and neither the
    # table nor a note said so (time and steps/s then compare runs of different lengths)
    rows = _rows()
    rows[1] = {**rows[1], "steps": 27}
    rows[2] = {**rows[2], "steps": 31, "stopped": 1}  # noted as stopped, not again as short
    md = Comparison("p", rows, {"budget": "steps", "steps": 40}).markdown()
    assert (
        f"\n{KAN}: 1 of 3 runs ended before the 40-step budget, at 27 steps (an L-BFGS stage "
        "converged; its remaining steps went unused)\n"
    ) in md
    assert md.count("-step budget") == 1
    # a time budget has no step count to fall short of
    assert "step budget" not in Comparison("p", rows, {"budget": "seconds"}).markdown()

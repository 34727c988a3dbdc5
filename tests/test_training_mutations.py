"""Loss assembly and the training loop against independent arithmetic (mutation audit).

Each test here failed under a plausible mutation of ``kanpde/losses.py`` or
``kanpde/training.py`` that the rest of the suite let pass; the comments name the mutation
each one catches. Expected values come from closed forms, NumPy or the state recorded at
the moment a rule refers to, never from the code's own output captured as a constant.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from stops import Poisoned

import kanpde
from kanpde import training
from kanpde.losses import Residuals, chunked
from kanpde.schedule import parse_schedule
from kanpde.training import Trainer, build_model

ROOT = Path(__file__).resolve().parents[1]
POISSON1D = ROOT / "problems" / "poisson1d.py"
DT = torch.float64
TINY = {"interior": 20, "boundary": 2, "method": "grid", "test": 11}


def _tiny(stages, log_every=1, **kw):
    """A [1, 3, 1] KAN on poisson1d with 20 points: a training run of a few milliseconds."""
    problem = kanpde.load_problem(POISSON1D)
    torch.manual_seed(0)
    model = build_model(problem, {"width": [1, 3, 1], "grid": 3}, DT)
    res = Residuals(problem, model, TINY, problem.weights, DT, "cpu")
    return Trainer(res, parse_schedule(stages), progress=False, log_every=log_every, **kw)


# ------------------------------------------------------------------ evaluation in chunks


@pytest.mark.parametrize("rows, chunk", [(10, 4), (12, 4), (3, 4), (5, 1)])
def test_chunked_evaluation_is_the_whole_evaluation(rows, chunk):
    """``chunked(f, x, c)`` = ``f(x)`` row for row, whatever ``c`` (catches: a chunk of
    ``c - 1`` rows, which dropped one row per chunk: invisible with the default chunk of
    65536 on small test sets, a shape error or silently short predictions on large ones)."""
    x = torch.arange(rows * 2, dtype=DT).reshape(rows, 2)

    def f(t):
        return torch.stack([t[:, 0] * t[:, 1], t[:, 0] - 3 * t[:, 1]], dim=1)

    out = chunked(f, x, chunk)
    assert out.shape == (rows, 2)
    assert torch.equal(out, f(x))


# -------------------------------------------------------------------------- test set


def test_the_test_set_takes_the_problems_own_test_count_by_default():
    """Without ``n``, ``test_set`` samples ``problem.points["test"]`` nodes per axis, here an
    11-node grid of [-1, 1] with u = sin(πx) there (catches: the built-in 101 used although
    the problem names its own count)."""
    problem = kanpde.load_problem(POISSON1D)
    problem.points = {**problem.points, "test": 11}
    x, u = training.test_set(problem)  # (imported under its module: pytest collects test_*)
    np.testing.assert_allclose(x.numpy()[:, 0], np.linspace(-1.0, 1.0, 11), rtol=0, atol=1e-15)
    np.testing.assert_allclose(u.numpy(), np.sin(np.pi * x.numpy()), rtol=0, atol=1e-15)
    assert training.test_set(problem, 5)[0].shape == (5, 1)  # an explicit n wins


def test_an_exact_solution_returning_a_flat_vector_is_one_column():
    """``exact(x)`` may return (N,) for one output: it is the (N, 1) column of those values
    (catches: the flat vector refused as of the wrong shape)."""
    problem = kanpde.load_problem(POISSON1D)
    problem.exact = lambda x: torch.sin(np.pi * x[:, 0])
    x, u = training.test_set(problem, 9)
    assert u.shape == (9, 1)
    want = np.sin(np.pi * np.linspace(-1.0, 1.0, 9))
    np.testing.assert_allclose(u.numpy()[:, 0], want, rtol=0, atol=1e-15)


def test_a_reference_reaching_the_domains_end_up_to_rounding_is_taken():
    """A reference grid whose last node is the domain's end up to rounding (an axis built as
    ``a0 + i h``, say: 1 + 2.2e-16 here) measures the errors on the domain; only a grid reaching
    clearly past the end is refused (catches: a tolerance of 0, which refused it)."""
    from kanpde import ProblemError
    from kanpde.reference import Reference

    problem = kanpde.load_problem(POISSON1D)
    problem.exact = None
    axis = np.linspace(-1.0, 1.0, 21)
    axis[-1] = np.nextafter(1.0, 2.0)  # 1 + 2.2e-16: the end up to rounding
    problem.reference = Reference(("x",), (axis,), {"u": np.sin(np.pi * axis)})
    x, u = training.test_set(problem)
    np.testing.assert_array_equal(x.numpy()[:, 0], axis)
    np.testing.assert_allclose(u.numpy()[:, 0], np.sin(np.pi * axis), rtol=0, atol=0)
    past = np.linspace(-1.0, 1.001, 21)
    problem.reference = Reference(("x",), (past,), {"u": np.sin(np.pi * past)})
    with pytest.raises(ProblemError, match="beyond the domain"):
        training.test_set(problem)


# ---------------------------------------------------------------------------- rollback


def _adam_state(trainer):
    """Adam's tensors (moments and step count) per parameter, cloned."""
    return [
        {k: v.detach().clone() for k, v in trainer._adam.state[p].items() if torch.is_tensor(v)}
        for p in trainer.params()
    ]


def test_every_rollback_to_a_snapshot_restores_its_parameters_and_adam_moments():
    """A rollback puts back the parameters and Adam's moments of the last good state, however
    many times that state is rolled back to: the second rollback must not find the moments
    that the steps after the first one accumulated (catches: the snapshot's Adam state
    handed to the new optimizer without a copy, so that its steps edit the snapshot in place).

    Evaluations: 1 before training, steps 0-4 are 2-6, the log at step 5 is 7 (the snapshot),
    steps 5, 6 are 8, 9; call 10 (step 7) fails; steps 7, 8 are 11, 12; call 13 (step 9) fails.
    """
    t = _tiny("adam=12@1e-2", log_every=5)
    snap = {}

    def callback(trainer, row):
        if row["step"] == 5:
            snap["params"] = [p.detach().clone() for p in trainer.params()]
            snap["adam"] = _adam_state(trainer)

    t.callback = callback
    t.residuals = Poisoned(t.residuals, bad={10, 13})
    seen, failure = [], t._failure

    def spy(action, stop=True):  # called right after each rollback
        seen.append((t.step, [p.detach().clone() for p in t.params()], _adam_state(t)))
        failure(action, stop)

    t._failure = spy
    t.run()
    assert [step for step, _, _ in seen] == [7, 9]
    for _, params, adam in seen:
        for a, b in zip(params, snap["params"]):
            assert torch.equal(a, b)
        for got, want in zip(adam, snap["adam"]):
            assert got.keys() == want.keys() == {"step", "exp_avg", "exp_avg_sq"}
            assert float(got["step"]) == 5.0
            for k in want:
                assert torch.equal(got[k], want[k]), k
    assert t.step == 12 and all(bool(torch.isfinite(p).all()) for p in t.params())


def test_a_checkpoint_written_past_the_failure_limit_records_the_failure_and_is_written(
    tmp_path,
):
    """``save_checkpoint`` first acts on a deferred non-finite flag (roll back, Adam's rate
    x 0.1, the failure recorded) and then writes; stopping is its caller's business, so one
    failure over ``max_failures`` there must not raise (catches: ``stop=False`` ignored,
    which lost the checkpoint of a run stopped by Ctrl-C right then). The deferred (GPU)
    mode is forced on the CPU, as tests/test_reliability.py does."""
    from kanpde.checkpoint import load_checkpoint

    path = tmp_path / "checkpoint.h5"
    t = _tiny("adam=5@1e-2", log_every=5, max_failures=2, checkpoint=path)
    t._defer_checks = True
    t.run()  # the log at step 5 is the last good state
    good = [p.detach().clone() for p in t.params()]
    with torch.no_grad():
        for p in t.params():
            p.add_(1.0)  # a state the flag says is not to be kept
    t.failures, t._skipped = 2, torch.tensor(1.0)
    t.save_checkpoint()
    assert t.failures == 3 and t._skipped is None
    assert t.history.events[-1]["event"] == "nonfinite"
    assert t._adam.param_groups[0]["lr"] == pytest.approx(1e-3, rel=1e-12)
    saved = load_checkpoint(t.checkpoint_path)
    assert int(saved["counters"]["failures"]) == 3
    for p, q in zip(good, t.params()):
        assert torch.equal(p, q)
    state = saved["model_state"]
    for (name, _), p in zip(t.model.named_parameters(), good):
        assert torch.equal(torch.as_tensor(state[name]), p)


# ------------------------------------------------------------------------- resampling


def test_resamplings_in_later_stages_draw_new_points():
    """Every resampling of a run draws a fresh uniform set: independent draws of continuous
    points never repeat one another, also across stages (catches: the draw seeded by the step
    within the stage, so that step 4 of the second stage redrew step 4's points of the first).
    """
    points = {**TINY, "method": "uniform", "resample": 4}
    problem = kanpde.load_problem(POISSON1D)
    torch.manual_seed(0)
    model = build_model(problem, {"width": [1, 3, 1], "grid": 3}, DT)
    res = Residuals(problem, model, points, problem.weights, DT, "cpu")
    stages = [{"grid": 3, "adam": 8, "lr": 1e-2}, {"adam": 8, "lr": 1e-2}]
    t = Trainer(res, parse_schedule(stages), progress=False, log_every=50)
    drawn, real = [], res.set_interior

    def set_interior(x):
        drawn.append(x.clone())
        real(x)

    res.set_interior = set_interior
    initial = tuple(res.interior.x[:, 0].tolist())
    t.run()
    assert [e["step"] for e in t.history.events if e["event"] == "resample"] == [4, 8, 12]
    sets = [tuple(x[:, 0].tolist()) for x in drawn]
    assert len(sets) == 3 and len(set(sets + [initial])) == 4


def test_the_loss_after_new_interior_points_is_the_mean_residual_at_those_points():
    """After ``set_interior`` (what every resampling calls) the PDE term is mean(r²) at the
    new points, r = u'' + π² sin(πx) from autograd on the bare model, also when the jets
    serve it in one shared model call (catches: the shared call's concatenated points left
    at the old interior, so that resampling changed the reported points but not the loss)."""
    problem = kanpde.load_problem(POISSON1D)
    torch.manual_seed(0)
    model = build_model(problem, {"width": [1, 3, 1], "grid": 3}, DT)
    res = Residuals(problem, model, TINY, {}, DT, "cpu")
    assert res.pde.fused
    # as many points as before, as a resampling draws, then fewer: the mean's denominator
    # follows (it stayed the count the term was built with: 17 points gave 17/20 of the mean)
    for n in (20, 17):
        new = torch.linspace(-0.9, 0.95, n, dtype=DT).reshape(-1, 1)
        res.set_interior(new)
        x = new.clone().requires_grad_(True)
        u = model(x)
        (g,) = torch.autograd.grad(u.sum(), x, create_graph=True)
        (h,) = torch.autograd.grad(g.sum(), x)
        r = h + np.pi**2 * torch.sin(np.pi * new)
        pde = float(res.terms_of()["pde"].detach())
        assert pde == pytest.approx(float((r * r).mean()), rel=1e-12)

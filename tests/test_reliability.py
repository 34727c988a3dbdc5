"""Checkpoint/resume after SIGKILL, NaN recovery, determinism, safe files."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from stops import Killed, Poisoned, kill_after_checkpoint

import kanpde
from kanpde.checkpoint import load_checkpoint
from kanpde.results import ResultsError
from kanpde.training import TrainingStopped

ROOT = Path(__file__).resolve().parents[1]
POISSON = str(ROOT / "problems" / "poisson2d.py")
# Small but real: Adam then L-BFGS across a grid extension, so the checkpoint must carry both
# optimizers' states and the grid change.
SCHEDULE = "3:adam=40@1e-2,6:lbfgs=40"
POINTS = "interior=300,boundary=80,method=sobol,test=21"


def _default_sigint():
    # pytest-xdist workers ignore SIGINT and children inherit that; a user's terminal does not.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def cli(*args, **kw):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "kanpde", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
        **kw,
    )


def solve_args(out, every="5"):
    return [
        "solve",
        POISSON,
        "--schedule",
        SCHEDULE,
        "--points",
        POINTS,
        "--out",
        str(out),
        "--quiet",
        "--log-every",
        "5",
        "--checkpoint-every",
        every,
        "--device",
        "cpu",
    ]


def run_dir(parent: Path) -> Path:
    (d,) = [p for p in parent.iterdir() if p.is_dir()]
    return d


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    p = cli(*solve_args(out))
    stdout, stderr = p.communicate(timeout=300)
    assert p.returncode == 0, stderr
    return kanpde.load(run_dir(out))


def test_resume_after_sigkill_matches_uninterrupted(tmp_path, uninterrupted):
    p = cli(*solve_args(tmp_path))
    # Kill while the L-BFGS stage runs (after the checkpoint of step 50 or later).
    deadline = time.time() + 240
    while time.time() < deadline:
        dirs = [d for d in tmp_path.iterdir() if d.is_dir()]
        ck = dirs[0] / "checkpoint.h5" if dirs else None
        if ck is not None and ck.exists():
            try:
                if load_checkpoint(ck)["position"]["step"] >= 50:
                    break
            except ResultsError:
                pass  # caught between rename and read: try again
        if p.poll() is not None:
            pytest.fail("the run finished before it could be killed: " + p.stderr.read())
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    d = run_dir(tmp_path)
    assert not (d / "result.h5").exists()
    state = load_checkpoint(d / "checkpoint.h5")  # readable: never left half-written
    assert 50 <= state["position"]["step"] < 80

    r = cli(
        "solve",
        POISSON,
        "--resume",
        str(d),
        "--quiet",
        "--log-every",
        "5",
        "--checkpoint-every",
        "5",
    )
    stdout, stderr = r.communicate(timeout=300)
    assert r.returncode == 0, stderr
    resumed = kanpde.load(d)
    assert not (d / "checkpoint.h5").exists()  # removed once the result is written
    assert not [f for f in d.iterdir() if f.name.endswith(".tmp")]  # stale temporaries gone
    assert resumed.metrics["steps"] == uninterrupted.metrics["steps"] == 80
    np.testing.assert_array_equal(resumed.history["step"], uninterrupted.history["step"])
    # Same arithmetic in the same order: the resumed run reproduces the uninterrupted one bit
    # for bit (the README's claim): losses, errors, predictions and the model's state.
    np.testing.assert_array_equal(resumed.history["loss"], uninterrupted.history["loss"])
    np.testing.assert_array_equal(resumed.history["mse"], uninterrupted.history["mse"])
    np.testing.assert_array_equal(resumed.solution["pred"], uninterrupted.solution["pred"])
    assert set(resumed.state) == set(uninterrupted.state)
    for key, value in uninterrupted.state.items():
        np.testing.assert_array_equal(resumed.state[key], value, err_msg=key)
    for key in ("mse", "rel_l2", "max_err"):
        assert resumed.metrics[key] == uninterrupted.metrics[key], key


def test_ctrl_c_saves_a_checkpoint_and_resume_refuses_a_changed_problem(tmp_path):
    src = tmp_path / "p.py"
    src.write_text(Path(POISSON).read_text())
    args = solve_args(tmp_path / "runs", every="10")[2:]
    # A schedule far longer than the test waits: on a loaded machine the signal may come late,
    # and a run that had already finished would leave no checkpoint to look at.
    args[args.index(SCHEDULE)] = "3:adam=40@1e-2,6:lbfgs=100000"
    p = cli("solve", str(src), *args)
    deadline = time.time() + 120
    while time.time() < deadline and not list((tmp_path / "runs").glob("*/checkpoint.h5")):
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    p.communicate(timeout=120)
    d = run_dir(tmp_path / "runs")
    state = load_checkpoint(d / "checkpoint.h5")  # (re)written on Ctrl-C
    assert state["position"]["step"] >= 10
    assert not (d / "result.h5").exists()
    src.write_text(src.read_text() + "\n# edited\n")
    r = cli("solve", str(src), "--resume", str(d), "--quiet")
    _, stderr = r.communicate(timeout=120)
    assert r.returncode == 2
    assert stderr.startswith("kanpde: error:") and "differs from the problem" in stderr
    assert len(stderr.strip().splitlines()) == 1


def make_trainer(schedule, bad, max_failures=5):
    from kanpde.losses import Residuals
    from kanpde.schedule import parse_schedule
    from kanpde.training import Trainer, build_model

    problem = kanpde.load_problem(POISSON)
    torch.manual_seed(0)
    model = build_model(problem, {"grid": 3}, torch.float64, "cpu")
    res = Residuals(
        problem,
        model,
        {"interior": 200, "boundary": 40, "method": "sobol"},
        {"pde": 0.01},
        torch.float64,
        "cpu",
    )
    poisoned = Poisoned(res, bad)
    trainer = Trainer(
        res, parse_schedule(schedule), None, log_every=5, progress=False, max_failures=max_failures
    )
    trainer.residuals = poisoned
    return trainer


class _CtrlC(Poisoned):
    """Wraps Residuals so that one chosen evaluation presses Ctrl-C ``times`` times."""

    def __init__(self, residuals, at, times=1):
        super().__init__(residuals, bad=())
        self.at, self.times = at, times

    def __call__(self):
        out = super().__call__()
        if self.calls == self.at:
            for _ in range(self.times):
                signal.raise_signal(signal.SIGINT)
        return out


@pytest.fixture
def terminal_sigint():
    # pytest-xdist workers ignore SIGINT; in a terminal Python raises KeyboardInterrupt.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def interrupted(schedule, at, times=1):
    trainer = make_trainer(schedule, bad=())
    trainer.log_every = 10
    trainer.residuals = _CtrlC(trainer.residuals.residuals, at, times)
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    return trainer


def test_ctrl_c_in_adam_stops_after_the_step_in_progress(terminal_sigint):
    # Evaluations: 1 before training, then one per step and one per log (steps 10, 20).
    trainer = interrupted("3:adam=30@1e-2", at=15)
    assert trainer.step == 13 and trainer.evals == 13
    assert not trainer._interrupted
    trainer.load_state_dict(trainer.state_dict())  # the checkpoint written on Ctrl-C
    trainer.run()
    assert trainer.step == 30


def test_ctrl_c_in_lbfgs_returns_to_the_start_of_the_call(terminal_sigint):
    trainer = interrupted("3:lbfgs=40", at=25)  # inside the second 10-iteration call
    state = trainer.state_dict()  # the checkpoint written on Ctrl-C
    assert trainer.step == 10 and "lbfgs" in state  # the memory of the call's start is kept
    last = trainer.history.rows[-1]
    assert last["step"] == 10
    # The parameters are the logged iterate of step 10, not a line-search trial point.
    assert trainer._evaluate()[0] == pytest.approx(last["loss"], rel=1e-12)
    resumed = make_trainer("3:lbfgs=40", bad=())
    resumed.log_every = 10
    resumed.load_state_dict(state)
    resumed.run()
    full = make_trainer("3:lbfgs=40", bad=())
    full.log_every = 10
    full.run()
    assert resumed.step == full.step == 40
    # the resumed run continues exactly as the uninterrupted one
    assert [r["loss"] for r in resumed.history.rows] == [r["loss"] for r in full.history.rows]
    for a, b in zip(resumed.model.parameters(), full.model.parameters()):
        assert torch.equal(a, b)


def test_second_ctrl_c_stops_at_once(terminal_sigint):
    trainer = interrupted("3:adam=30@1e-2", at=15, times=2)
    assert trainer.step == 12  # the step whose evaluation was interrupted did not happen


def test_nan_in_adam_is_rolled_back_and_training_continues():
    trainer = make_trainer("3:adam=30@1e-2", bad={12})
    trainer.run()
    events = [e for e in trainer.history.events if e["event"] == "nonfinite"]
    assert len(events) == 1 and "learning rate" in events[0]["action"]
    assert trainer.step == 30
    params = torch.cat([p.detach().reshape(-1) for p in trainer.model.parameters()])
    assert bool(torch.isfinite(params).all())
    assert all(np.isfinite(r["loss"]) for r in trainer.history.rows)
    assert trainer.history.rows[-1]["loss"] < trainer.history.rows[0]["loss"]


def test_nan_in_lbfgs_falls_back_to_adam():
    trainer = make_trainer("3:lbfgs=20", bad={6})
    trainer.run()
    events = [e for e in trainer.history.events if e["event"] == "nonfinite"]
    assert len(events) == 1 and "Adam" in events[0]["action"]
    params = torch.cat([p.detach().reshape(-1) for p in trainer.model.parameters()])
    assert bool(torch.isfinite(params).all())
    assert trainer.step == 20


def test_nan_steps_roll_back_to_a_finite_state_with_ever_smaller_steps():
    # sqrt(1 - u) is NaN once u > 1, where Adam at lr 0.5 soon goes. A log row can land on
    # such a state; it must not become the rollback target (once: stopped after 6 failures
    # with log_every=5 while log_every=25 trained on), and each failure lowers the rate again.
    import math as m

    from kanpde import Dirichlet, Interval, Problem, d

    problem = Problem(
        name="nan_prone",
        domain=Interval(-1, 1),
        pde=lambda x, u: d(u, x, "x", "x") + 10 * torch.sqrt(1 - u),
        conditions=[Dirichlet(0.0)],
        exact=lambda x: torch.sin(m.pi * x),
    )
    torch.manual_seed(0)
    run = kanpde.solve(
        problem,
        schedule="adam=200@0.5",
        points={"interior": 60, "boundary": 2, "test": 21},
        log_every=5,
        progress=False,
        device="cpu",
    )
    assert run.metrics["steps"] == 200
    lrs = [float(e["action"].rsplit(" ", 1)[1]) for e in run.events if e["event"] == "nonfinite"]
    assert len(lrs) >= 2
    assert all(b == pytest.approx(a / 10) for a, b in zip(lrs, lrs[1:]))
    assert np.isfinite(run.history["loss"][-1])


def test_time_budget_in_lbfgs_counts_every_iteration():
    trainer = make_trainer("3:lbfgs=200", bad=())
    trainer.log_every = 50
    trainer.max_seconds = 1e-9  # spent after the first iteration
    trainer.run()
    opt = trainer._lbfgs_opt
    iterations = opt.state[opt._params[0]]["n_iter"]
    assert trainer.step == iterations == trainer.history.rows[-1]["step"] == 1
    assert trainer.history.events[-1]["event"] == "time_budget_spent"


def test_ctrl_c_after_a_grid_update_in_lbfgs_resumes_without_a_second_update(
    tmp_path, terminal_sigint, monkeypatch
):
    # The update runs before the L-BFGS call; Ctrl-C inside the call returns to its start,
    # after the update, at the same position: resuming once applied the update again.
    from kanpde import training

    kw = dict(
        schedule=[{"grid": 3, "lbfgs": 30, "update_grid": 10, "update_until": 30}],
        points={"interior": 60, "boundary": 20, "method": "sobol", "test": 11},
        progress=False,
        device="cpu",
        log_every=5,
        checkpoint_every=100,
    )
    full = kanpde.solve(POISSON, **kw)
    original, calls = training.Trainer._update_grid, {"n": 0}

    def update_then_ctrl_c(self):
        original(self)
        calls["n"] += 1
        if calls["n"] == 2:  # the update at i = 10 (the first is at the stage start)
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(training.Trainer, "_update_grid", update_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        kanpde.solve(POISSON, out=tmp_path, **kw)
    monkeypatch.setattr(training.Trainer, "_update_grid", original)
    resumed = kanpde.solve(POISSON, resume=tmp_path, progress=False)

    def updates(run):
        return [e["step"] for e in run.events if e["event"] == "update_grid"]

    assert updates(resumed) == updates(full) == [0, 10, 20]
    assert resumed.metrics["mse"] == full.metrics["mse"]


def test_checkpoints_without_a_saved_log_interval_resume_with_the_logged_one():
    from kanpde.training import _logged_interval

    rows = [{"step": s} for s in (0, 25, 50, 75, 100, 125, 150, 160, 175, 200)]
    assert _logged_interval(json.dumps({"rows": rows, "events": []})) == 25
    assert _logged_interval(json.dumps({"rows": [{"step": 0}], "events": []})) == 50


def test_repeated_failures_stop_with_results_written(tmp_path, monkeypatch):
    from kanpde import training

    original = training.Residuals.__call__
    count = {"n": 0}

    def poisoned(self):
        loss, terms = original(self)
        count["n"] += 1
        return (loss * float("nan") if count["n"] > 8 else loss), terms

    monkeypatch.setattr(training.Residuals, "__call__", poisoned)
    with pytest.raises(TrainingStopped, match="not finite") as info:
        kanpde.solve(
            POISSON,
            schedule="3:adam=50@1e-2",
            out=tmp_path,
            progress=False,
            points={"interior": 100, "boundary": 40, "test": 11},
            device="cpu",
            log_every=2,
        )
    run = info.value.run
    assert run is not None and (tmp_path / "result.h5").exists()
    loaded = kanpde.load(tmp_path)
    assert loaded.metrics["steps"] == run.metrics["steps"] < 50
    assert sum(e["event"] == "nonfinite" for e in loaded.events) == 6
    # marked as the run's own failure (a study records it as a row and goes on)
    assert info.value.nonfinite is True
    assert [e["nonfinite"] for e in loaded.events if e["event"] == "stopped"] == [True]


def test_same_seed_same_history_bit_for_bit():
    kw = dict(
        schedule="3:adam=20@1e-2,6:lbfgs=10",
        progress=False,
        device="cpu",
        log_every=1,
        points={"interior": 200, "boundary": 40, "method": "uniform", "test": 11},
    )
    a = kanpde.solve(POISSON, seed=3, **kw)
    b = kanpde.solve(POISSON, seed=3, **kw)
    c = kanpde.solve(POISSON, seed=4, **kw)
    for key in ("loss", "mse", "loss_pde", "loss_dirichlet"):
        np.testing.assert_array_equal(a.history[key], b.history[key])
    assert not np.array_equal(a.history["loss"], c.history["loss"])


def test_checkpoint_and_results_are_not_pickles(tmp_path):
    run = kanpde.solve(
        POISSON,
        schedule="3:adam=4",
        out=tmp_path,
        progress=False,
        device="cpu",
        points={"interior": 50, "boundary": 20, "test": 11},
    )
    with open(run.path, "rb") as f:
        assert f.read(8) == b"\x89HDF\r\n\x1a\n"
    with h5py.File(run.path) as f:
        assert json.loads(f.attrs["config"])["problem"] == "poisson2d"


# -- --resume uses the run's own settings; Ctrl-C tells how to continue -------------------------

POISSON1D = str(ROOT / "problems" / "poisson1d.py")
SMALL = [
    "--schedule",
    "5:adam=40@1e-2",
    "--points",
    "interior=40,test=21",
    "--log-every",
    "5",
    "--checkpoint-every",
    "10",
    "--quiet",
    "--device",
    "cpu",
]


def test_cli_resume_restores_the_runs_log_and_checkpoint_intervals(tmp_path, monkeypatch):
    from kanpde.cli import main

    assert main(["solve", POISSON1D, *SMALL, "--out", str(tmp_path / "full")]) == 0
    full = kanpde.load(run_dir(tmp_path / "full"))
    with monkeypatch.context() as m:
        kill_after_checkpoint(m, 20)
        with pytest.raises(Killed):
            main(["solve", POISSON1D, *SMALL, "--out", str(tmp_path / "killed")])
    d = run_dir(tmp_path / "killed")
    assert load_checkpoint(d / "checkpoint.h5")["position"]["step"] == 20
    # As the README says: no options but the run directory.
    assert main(["solve", POISSON1D, "--resume", str(d), "--quiet"]) == 0
    resumed = kanpde.load(d)
    np.testing.assert_array_equal(resumed.history["step"], full.history["step"])
    np.testing.assert_allclose(resumed.history["loss"], full.history["loss"], rtol=1e-12)
    assert resumed.config["log_every"] == 5 and resumed.config["checkpoint_every"] == 10


def test_cli_resume_interval_may_be_overridden(tmp_path, monkeypatch):
    from kanpde.cli import main

    with monkeypatch.context() as m:
        kill_after_checkpoint(m, 10)
        with pytest.raises(Killed):
            main(["solve", POISSON1D, *SMALL, "--out", str(tmp_path)])
    d = run_dir(tmp_path)
    assert main(["solve", POISSON1D, "--resume", str(d), "--quiet", "--log-every", "10"]) == 0
    run = kanpde.load(d)
    assert run.config["log_every"] == 10 and run.config["checkpoint_every"] == 10
    assert run.history["step"].astype(int).tolist() == [0, 5, 10, 20, 30, 40]


@pytest.mark.parametrize(
    "extra",
    [["--seed", "1"], ["--schedule", "adam=5"], ["--points", "interior=9"], ["--out", "x"],
     ["--width", "1,3,1"], ["--dtype", "float32"], ["--preset", "full"], ["--grid", "3"]],
)  # fmt: skip
def test_cli_resume_rejects_options_that_would_change_the_run(tmp_path, capsys, extra):
    from kanpde.cli import main

    (tmp_path / "checkpoint.h5").write_bytes(b"")  # never read: the options are checked first
    code = main(["solve", POISSON1D, "--resume", str(tmp_path), *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert f"{extra[0]} cannot be combined with --resume" in err


def test_ctrl_c_names_the_checkpoint_and_the_command_to_continue(tmp_path, capsys, monkeypatch):
    from kanpde import training
    from kanpde.cli import main

    def interrupted_run(self):
        self.step = 7  # a few steps in, stopped between steps
        self.stopped_cleanly = True
        raise KeyboardInterrupt

    monkeypatch.setattr(training.Trainer, "run", interrupted_run)
    code = main(["solve", POISSON1D, *SMALL, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    d = run_dir(tmp_path)
    assert code == 130
    assert (d / "checkpoint.h5").exists()
    assert f"checkpoint saved in {d / 'checkpoint.h5'}" in err
    assert f"kanpde solve {POISSON1D} --resume {d}" in err


def test_ctrl_c_before_the_first_checkpoint_leaves_no_run_directory(tmp_path, capsys, monkeypatch):
    from kanpde import training
    from kanpde.cli import main

    def interrupted(*args, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "test_set", interrupted)
    code = main(["solve", POISSON1D, *SMALL, "--out", str(tmp_path / "runs")])
    assert code == 130
    assert "nothing to resume" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------- time shared over stages
POINTS1D = {"interior": 40, "boundary": 2, "method": "grid", "test": 51}


def test_timed_stages_are_one_training_with_adam_decay_over_the_stage_time():
    # compare --budget seconds once ran each stage as a separate solve: Adam's moments were
    # reset between stages and a decay spread over the 1000x step cap (lr barely moved).
    from kanpde.compare import solve_timed, stage_seconds
    from kanpde.schedule import parse_schedule

    stages = parse_schedule(
        [{"grid": 3, "adam": 5, "lr": 1e-2, "decay": 0.01}, {"adam": 5, "lr": 1e-3}]
    )
    seen = []

    def watch(trainer, row):
        if trainer._adam is not None:  # the first row is logged before any step
            seen.append((row["stage"], trainer._adam.param_groups[0]["lr"], trainer._adam))

    run = solve_timed(
        kanpde.load_problem(POISSON1D), {}, stages, 0.4, points=POINTS1D, seed=0,
        device="cpu", progress=False, log_every=5, callback=watch,
    )  # fmt: skip
    shares = stage_seconds(run)
    assert shares[0] == pytest.approx(0.2, rel=1e-9) and len(shares) == 2
    assert 0.4 <= run.metrics["train_time"] <= 0.55
    # stage 0 ends with its whole decay applied, exactly: 1e-2 * 0.01
    lr_end0 = [lr for stage, lr, _ in seen if stage == 0][-1]
    assert lr_end0 == pytest.approx(1e-4, rel=1e-9)
    # one optimizer throughout: its step count covers both stages
    adams = {id(a) for _, _, a in seen}
    assert len(adams) == 1
    opt = seen[-1][2]
    assert all(s["step"] == run.metrics["steps"] for s in opt.state.values())
    # the clock, not the (nominal 5) steps, ended the first stage
    assert [e["stage"] for e in run.events if e["event"] == "stage_time_spent"] == [0]
    assert run.metrics["steps"] > 10 and sum(run.history["stage"] == 1) >= 2


def test_a_stage_left_no_time_still_takes_one_step_and_reaches_its_grid():
    run = kanpde.solve(
        POISSON1D, schedule="3:lbfgs=100000,6:lbfgs=100000", max_seconds=0.2,
        time_shares=[1, 0], points=POINTS1D, device="cpu", progress=False, log_every=5,
    )  # fmt: skip
    clocks = [e for e in run.events if e["event"] == "stage_clock"]
    assert [c["stage"] for c in clocks] == [0, 1]
    assert clocks[0]["seconds"] == pytest.approx(0.2) and clocks[1]["seconds"] < 0.05
    assert run.history["grid"][-1] == 6
    last = run.history["step"][-1]
    first_of_1 = [e["step"] for e in run.events if e["event"] == "stage_time_spent"][0]
    assert last == first_of_1 + 1
    assert run.events[-1]["event"] == "time_budget_spent"
    assert run.config["max_seconds"] == 0.2 and run.config["time_shares"] == [1.0, 0.0]


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"time_shares": [1, 1]}, "needs max_seconds"),
        ({"time_shares": [1], "max_seconds": 1.0}, "2 non-negative numbers"),
        ({"time_shares": [1, -1], "max_seconds": 1.0}, "2 non-negative numbers"),
        ({"time_shares": [1, float("nan")], "max_seconds": 1.0}, "2 non-negative numbers"),
    ],
)
def test_time_shares_are_checked(kw, message):
    with pytest.raises(ValueError, match=message):
        kanpde.solve(POISSON1D, schedule="3:lbfgs=2,6:lbfgs=2", points=POINTS1D,
                     device="cpu", progress=False, **kw)  # fmt: skip


def test_interrupted_timed_run_resumes_with_its_budget_and_clock(tmp_path, terminal_sigint):
    fired = []

    def ctrl_c(trainer, row):
        if row["step"] >= 10 and not fired:
            fired.append(row["step"])
            signal.raise_signal(signal.SIGINT)

    kw = dict(schedule="3:adam=3000@1e-2,6:lbfgs=3000", points=POINTS1D, device="cpu",
              progress=False, log_every=5, checkpoint_every=1000)  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        kanpde.solve(POISSON1D, out=tmp_path, max_seconds=0.6, time_shares=[1, 1],
                     callback=ctrl_c, **kw)  # fmt: skip
    state = load_checkpoint(tmp_path / "checkpoint.h5")
    start, end = state["position"]["clock"]
    assert start == 0.0 and end == pytest.approx(0.3)
    run = kanpde.solve(POISSON1D, resume=tmp_path, progress=False)
    # The budget and the stage's clock came from the checkpoint: without them the resumed run
    # trains all 6000 steps.
    assert run.config["max_seconds"] == 0.6 and run.config["time_shares"] == [1.0, 1.0]
    assert run.metrics["steps"] < 6000 and run.metrics["train_time"] <= 0.9
    clocks = [e for e in run.events if e["event"] == "stage_clock"]
    assert [c["stage"] for c in clocks] == [0, 1]  # the interrupted stage kept its clock
    assert clocks[0]["seconds"] == pytest.approx(0.3)
    assert run.history["grid"][-1] == 6


def test_zero_weight_stages_get_no_time_and_budgets_are_checked():
    # Stage 0 ends by its steps; the zero-weight stage 1 once got the leftover time anyway.
    run = kanpde.solve(
        POISSON1D, schedule="3:adam=5,6:adam=100000", max_seconds=0.3, time_shares=[2, 0],
        points=POINTS1D, device="cpu", progress=False, log_every=5,
    )  # fmt: skip
    clocks = [e["seconds"] for e in run.events if e["event"] == "stage_clock"]
    assert clocks[0] == pytest.approx(0.3) and clocks[1] == 0.0
    assert run.metrics["steps"] == 6  # 5 + the one step every stage takes
    for bad in (float("nan"), float("inf"), "1"):
        with pytest.raises(ValueError, match="max_seconds must be a finite number"):
            kanpde.solve(POISSON1D, schedule="3:adam=1", max_seconds=bad, points=POINTS1D,
                         device="cpu", progress=False)  # fmt: skip
    with pytest.raises(ValueError, match="not all 0"):
        kanpde.solve(POISSON1D, schedule="3:adam=1,adam=1", max_seconds=1.0,
                     time_shares=[0, 0], points=POINTS1D, device="cpu", progress=False)  # fmt: skip


def test_first_run_of_a_process_is_not_charged_for_importing_the_optimizers(tmp_path):
    # The first optimizer of a process imports torch._dynamo (~1 s): it once counted as
    # training time and ate a budgeted run's time.
    code = (
        "import kanpde\n"
        f"run = kanpde.solve({POISSON1D!r}, schedule='3:lbfgs=1', points={POINTS1D!r},\n"
        "                   device='cpu', progress=False)\n"
        "print(run.metrics['train_time'])\n"
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert float(r.stdout.strip().splitlines()[-1]) < 0.3


def test_cli_and_api_log_and_checkpoint_alike_by_default(tmp_path):
    # The CLI once logged every 25 steps and solve() every 50: the README's quickstart
    # command and the catalogue (through solve) then kept histories of different resolution.
    from kanpde.cli import main

    args = ["--schedule", "5:adam=120@1e-2", "--points", "interior=40,test=21", "--quiet"]
    assert main(["solve", POISSON1D, *args, "--out", str(tmp_path / "cli")]) == 0
    cli = kanpde.load(run_dir(tmp_path / "cli"))
    api = kanpde.solve(POISSON1D, schedule="5:adam=120@1e-2", points={"interior": 40, "test": 21},
                       progress=False, out=tmp_path / "api")  # fmt: skip
    assert cli.config["log_every"] == api.config["log_every"] == 50
    assert cli.config["checkpoint_every"] == api.config["checkpoint_every"] == 100
    assert cli.history["step"].astype(int).tolist() == [0, 50, 100, 120]
    np.testing.assert_array_equal(cli.history["step"], api.history["step"])
    np.testing.assert_allclose(cli.history["loss"], api.history["loss"], rtol=1e-12)


def test_cli_summary_tells_of_rolled_back_steps(tmp_path, capsys):
    # A run that recovered from non-finite losses said so only in run.events.
    from kanpde.cli import main

    path = tmp_path / "blow.py"
    path.write_text(
        "import torch\n"
        "from kanpde import Dirichlet, Interval, Problem, d\n"
        "problem = Problem(name='blow', domain=Interval(0, 1),\n"
        "    pde=lambda x, u: d(u, x, 'x', 'x') - torch.exp(20 * u), conditions=[Dirichlet(1.0)],\n"
        "    model={'width': [1, 3, 1]}, schedule=[{'grid': 5, 'adam': 60, 'lr': 10.0}],\n"
        "    points={'interior': 50})\n"
    )
    torch.manual_seed(0)
    assert main(["solve", str(path), "--quiet", "--out", str(tmp_path / "runs")]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    run = kanpde.load(run_dir(tmp_path / "runs"))
    events = [e for e in run.events if e["event"] == "nonfinite"]
    assert events, "the problem should blow up at lr 10"
    n = len(events)
    tail = "1 non-finite loss: " if n == 1 else f"{n} non-finite losses, last: "
    assert line.endswith(tail + events[-1]["action"]), line


# -- deferred finiteness checks (the CUDA trainer's mode, forced here on the CPU) ---------------
def deferred(schedule, bad=(), **kw):
    trainer = make_trainer(schedule, bad, **kw)
    trainer._defer_checks = True
    return trainer


def flat(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def test_deferred_checks_train_as_per_step_checks_do():
    a, b = make_trainer("3:adam=30@1e-2", bad=()), deferred("3:adam=30@1e-2")
    a.run(), b.run()
    assert b._adam.param_groups[0]["fused"] is True and b._skipped is None
    # fused Adam against torch's default: the same arithmetic up to rounding (~1e-14 here)
    assert torch.allclose(flat(a.model), flat(b.model), rtol=0, atol=1e-12)
    assert [r["step"] for r in a.history.rows] == [r["step"] for r in b.history.rows]


def test_deferred_nan_step_is_left_undone_and_rolled_back_at_the_next_log(monkeypatch):
    # Evaluations: 1 before training, one per step, one per log (every 5 steps): call 12 is
    # the gradient of step 10, the last before the log that reads the flags.
    from kanpde.training import Trainer

    seen = {}
    rollback = Trainer._rollback

    def spy(self):
        seen["params"] = flat(self.model)
        seen["adam_step"] = float(next(iter(self._adam.state.values()))["step"])
        rollback(self)

    monkeypatch.setattr(Trainer, "_rollback", spy)
    trainer = deferred("3:adam=30@1e-2", bad={12})
    trainer.run()
    nine = make_trainer("3:adam=9@1e-2", bad=())
    nine.run()
    # the flagged step changed neither the parameters nor Adam's step count
    assert seen["adam_step"] == 9
    assert torch.allclose(seen["params"], flat(nine.model), rtol=0, atol=1e-12)
    events = [e for e in trainer.history.events if e["event"] == "nonfinite"]
    assert len(events) == 1 and events[0]["step"] == 10
    assert (
        events[0]["action"]
        == "rolled back (1 non-finite step skipped), Adam learning rate now 1.0e-03"
    )
    assert trainer.step == 30 and bool(torch.isfinite(flat(trainer.model)).all())
    assert trainer._adam.param_groups[0]["lr"] == pytest.approx(1e-3)
    assert all(np.isfinite(r["loss"]) for r in trainer.history.rows)


def test_deferred_flags_are_read_before_a_checkpoint_and_a_grid_update(tmp_path):
    from kanpde.schedule import Stage

    # Calls: 1 before training, steps 1-5, the log at 5 (call 7), then step 6 is call 8 and
    # step 8 call 10. The checkpoint at step 6 and the grid update before step 9 must each
    # act on the rollback their flagged step asks for, not write or refit the flagged state
    # (a real NaN persists: a resumed run would take that state as its rollback target).
    trainer = deferred("3:adam=10@1e-2", bad={8, 10})
    trainer.stages = [Stage("adam", 10, grid=3, lr=1e-2, update_grid=8, update_until=8)]
    trainer.checkpoint_path, trainer.checkpoint_every = tmp_path / "checkpoint.h5", 6
    trainer.run()
    events = [(e["event"], e["step"]) for e in trainer.history.events]
    assert events == [("update_grid", 0), ("nonfinite", 6), ("nonfinite", 8), ("update_grid", 8)]
    saved = load_checkpoint(trainer.checkpoint_path)
    assert int(saved["position"]["step"]) == 6
    assert [e["event"] for e in json.loads(saved["history"])["events"]][-1] == "nonfinite"


def after_ten_steps():
    """Parameters of the deferred run after step 10 (its first log): the rollback target."""
    ten = deferred("3:adam=10@1e-2")
    ten.log_every = 10
    ten.run()
    return flat(ten.model)


def test_deferred_flag_is_read_before_the_ctrl_c_checkpoint(terminal_sigint):
    # log_every 10: step 12 is call 14 (NaN), Ctrl-C during step 13 (call 15)
    stopped = deferred("3:adam=30@1e-2")
    stopped.log_every = 10
    stopped.residuals = _CtrlC(stopped.residuals.residuals, at=15)
    stopped.residuals.bad = {14}
    with pytest.raises(KeyboardInterrupt):
        stopped.run()
    state = stopped.state_dict()  # the checkpoint written on Ctrl-C
    events = json.loads(state["history"])["events"]
    assert [(e["event"], e["step"]) for e in events] == [("nonfinite", 13)]
    assert torch.allclose(flat(stopped.model), after_ten_steps(), rtol=0, atol=1e-12)


def test_deferred_run_resumes_from_its_checkpoint_and_from_a_per_step_one(terminal_sigint):
    full = deferred("3:adam=30@1e-2")
    full.log_every = 10
    full.run()
    for make in (deferred, make_trainer):  # a GPU run resumed, and a CPU run resumed on a GPU
        stopped = make("3:adam=30@1e-2", bad=())
        stopped.log_every = 10
        stopped.residuals = _CtrlC(stopped.residuals.residuals, at=15)
        with pytest.raises(KeyboardInterrupt):
            stopped.run()
        resumed = deferred("3:adam=30@1e-2")
        resumed.log_every = 10
        resumed.load_state_dict(stopped.state_dict())
        resumed.run()
        assert resumed._adam.param_groups[0]["fused"] is True
        assert resumed.step == 30
        assert torch.allclose(flat(resumed.model), flat(full.model), rtol=0, atol=1e-12)


def test_deferred_flag_is_read_when_the_time_is_up():
    trainer = deferred("3:adam=30@1e-2", bad={2})  # step 1's gradient
    trainer.max_seconds = 1e-9  # spent after the first step
    trainer.run()
    events = [(e["event"], e["step"]) for e in trainer.history.events]
    assert events == [("nonfinite", 1), ("time_budget_spent", 1)]
    assert trainer._skipped is None


@pytest.mark.parametrize("carry", [True, False])
@pytest.mark.parametrize("change", ["extension", "update"])
def test_deferred_checks_train_alike_across_grid_changes(change, carry):
    # Grid extension made the coefficients non-contiguous while their gradients are made
    # contiguous; fused Adam mixed the layouts silently on the CPU (parameters off by 0.2)
    # and refuses them on CUDA. The carried moments must match their parameter too. (One
    # change per run: with both, rounding differences in near-zero gradients take Adam's
    # sign-like first steps apart, ~1e-5.)
    from kanpde.schedule import Stage

    if change == "extension":
        stages = [Stage("adam", 10, grid=3, lr=1e-2), Stage("adam", 10, grid=6, lr=1e-2)]
    else:
        # updates before steps 1 and 5; a third (step 9) is ill-conditioned: its fit moves
        # by 1e-4 under 1e-15 changes of the samples in either mode
        stages = [Stage("adam", 8, grid=3, lr=1e-2, update_grid=4, update_until=8)]
    runs = []
    for make in (make_trainer, deferred):
        trainer = make("3:adam=1", bad=())
        trainer.stages, trainer.carry_moments = stages, carry
        trainer.run()
        runs.append(trainer)
    a, b = runs
    assert b._adam.param_groups[0]["fused"] is True
    event = {"extension": "extend_grid", "update": "update_grid"}[change]
    assert [e["event"] for e in b.history.events].count(event) >= 1
    for p in b.params():
        assert p.is_contiguous()
        for v in b._adam.state[p].values():
            assert v.ndim == 0 or v.stride() == p.stride()
    assert torch.allclose(flat(a.model), flat(b.model), rtol=0, atol=1e-11)


def test_deferred_flag_is_read_before_a_hard_ctrl_c_checkpoint(tmp_path, terminal_sigint):
    # A second Ctrl-C raises at once, past the reads between steps. solve() no longer saves
    # that state, but save_checkpoint() itself must never write a flagged state with its
    # failure unrecorded, wherever it is called from.
    stopped = deferred("3:adam=30@1e-2")
    stopped.log_every = 10
    stopped.residuals = _CtrlC(stopped.residuals.residuals, at=15, times=2)
    stopped.residuals.bad = {14}  # step 12's gradient; the second Ctrl-C hits step 13's
    with pytest.raises(KeyboardInterrupt):
        stopped.run()
    stopped.checkpoint_path = tmp_path / "checkpoint.h5"
    stopped.save_checkpoint()
    saved = load_checkpoint(stopped.checkpoint_path)
    events = json.loads(saved["history"])["events"]
    assert [(e["event"], e["step"]) for e in events] == [("nonfinite", 12)]
    assert torch.allclose(flat(stopped.model), after_ten_steps(), rtol=0, atol=1e-12)


def test_parameters_fused_adam_cannot_take_keep_per_step_checks():
    trainer = deferred("3:adam=30@1e-2", bad={12})
    layer = trainer.model.layers[0]
    c = layer.coef.detach()
    swapped = c.new_empty(c.shape[0], c.shape[2], c.shape[1]).transpose(1, 2)
    layer.coef = torch.nn.Parameter(swapped.copy_(c))
    assert not layer.coef.is_contiguous()
    trainer.run()
    assert trainer._adam.param_groups[0]["fused"] is None
    events = [(e["event"], e["step"], e["action"]) for e in trainer.history.events]
    assert events == [("nonfinite", 9, "rolled back, Adam learning rate now 1.0e-03")]  # at once
    assert trainer.step == 30 and bool(torch.isfinite(flat(trainer.model)).all())


# ------------------------------------------------------------- stops and failed writes
# The in-process command line with signals sent from inside training, at the n-th gradient.
STOPS = ["--schedule", "5:adam=30@1e-2,10:adam=10@1e-3", "--points", "interior=40,test=21",
         "--log-every", "5", "--checkpoint-every", "10", "--quiet", "--device", "cpu"]  # fmt: skip


@pytest.fixture
def terminal_signals():
    # as in a terminal or under a scheduler: Ctrl-C raises, SIGTERM and SIGHUP would kill
    previous = {
        signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler),
        signal.SIGTERM: signal.signal(signal.SIGTERM, signal.SIG_DFL),
        signal.SIGHUP: signal.signal(signal.SIGHUP, signal.SIG_DFL),
    }
    yield
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def _signals_at(monkeypatch, at: int, *signals):
    from kanpde import training

    original = training.Trainer._grad
    calls = [0]

    def grad(self):
        calls[0] += 1
        if calls[0] == at:
            for sig in signals:
                signal.raise_signal(sig)
        return original(self)

    monkeypatch.setattr(training.Trainer, "_grad", grad)
    return original


def _resumed_equals_uninterrupted(d: Path, tmp_path: Path) -> None:
    from kanpde.cli import main

    assert main(["solve", POISSON1D, "--resume", str(d), "--quiet"]) == 0
    assert main(["solve", POISSON1D, *STOPS, "--out", str(tmp_path / "full")]) == 0
    resumed, full = kanpde.load(d), kanpde.load(run_dir(tmp_path / "full"))
    np.testing.assert_array_equal(resumed.history["step"], full.history["step"])
    np.testing.assert_array_equal(resumed.history["loss"], full.history["loss"])
    np.testing.assert_array_equal(resumed.solution["pred"], full.solution["pred"])


def test_a_second_ctrl_c_keeps_the_last_regular_checkpoint(
    tmp_path, capsys, monkeypatch, terminal_signals
):
    # It stops at once, perhaps mid-step or mid-extension: that state was saved over the
    # regular checkpoint, and resumed to another result (Adam's step 25 taken twice) or not at
    # all (a half-extended grid with the old grid's moments).
    from kanpde.cli import main

    original = _signals_at(monkeypatch, 26, signal.SIGINT, signal.SIGINT)
    code = main(["solve", POISSON1D, *STOPS, "--out", str(tmp_path / "cut")])
    d = run_dir(tmp_path / "cut")
    assert code == 130
    err = capsys.readouterr().err
    assert f"stopped at once; the last regular checkpoint is kept in {d / 'checkpoint.h5'}" in err
    assert load_checkpoint(d / "checkpoint.h5")["position"]["step"] == 20
    monkeypatch.setattr(kanpde.training.Trainer, "_grad", original)
    _resumed_equals_uninterrupted(d, tmp_path)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_stop_between_steps_with_a_checkpoint(
    sig, tmp_path, capsys, monkeypatch, terminal_signals
):
    # a scheduler's stop or a closed terminal ended the run without a checkpoint
    from kanpde.cli import main

    original = _signals_at(monkeypatch, 26, sig)
    # the shell's status for the signal (143, 129), as a scheduler expects; Ctrl-C's is 130
    assert main(["solve", POISSON1D, *STOPS, "--out", str(tmp_path / "cut")]) == 128 + sig
    d = run_dir(tmp_path / "cut")
    assert f"checkpoint saved in {d / 'checkpoint.h5'}" in capsys.readouterr().err
    # the step whose gradient the signal met is finished first
    assert load_checkpoint(d / "checkpoint.h5")["position"]["step"] == 26
    assert signal.getsignal(sig) is signal.SIG_DFL  # handed back
    monkeypatch.setattr(kanpde.training.Trainer, "_grad", original)
    _resumed_equals_uninterrupted(d, tmp_path)


def test_ctrl_c_while_the_results_are_written_keeps_the_trained_state(
    tmp_path, capsys, monkeypatch
):
    # training had finished, yet the message said "checkpoint saved" of an older checkpoint
    from kanpde import training
    from kanpde.cli import main

    original = training.save_run

    def interrupted(run, out):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "save_run", interrupted)
    assert main(["solve", POISSON1D, *STOPS, "--out", str(tmp_path / "cut")]) == 130
    d = run_dir(tmp_path / "cut")
    assert "interrupted while writing the results; training had finished" in capsys.readouterr().err
    assert load_checkpoint(d / "checkpoint.h5")["position"]["step"] == 40
    monkeypatch.setattr(training, "save_run", original)
    _resumed_equals_uninterrupted(d, tmp_path)
    assert kanpde.load(d).metrics["steps"] == 40


def _failing_writes(monkeypatch, name: str, times: int = 1_000_000):
    """Writes of files called ``name`` fail as on a full disk (the first ``times`` of them)."""
    import errno
    import tempfile

    original = tempfile.mkstemp
    left = [times]

    def mkstemp(*args, prefix="", **kw):
        if prefix.startswith(f".{name}.") and left[0] > 0:
            left[0] -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(*args, prefix=prefix, **kw)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


def test_a_failed_checkpoint_write_is_warned_of_and_training_goes_on(tmp_path, capsys, monkeypatch):
    from kanpde.cli import main

    _failing_writes(monkeypatch, "checkpoint.h5", times=2)
    assert main(["solve", POISSON1D, *STOPS, "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert err.count("checkpoint.h5: could not be written (OSError: [Errno 28] No space") == 2
    assert "step 10:" in err and "training goes on" in err
    assert kanpde.load(run_dir(tmp_path)).metrics["steps"] == 40


def test_a_failed_results_write_is_one_line_and_keeps_the_trained_state(
    tmp_path, capsys, monkeypatch
):
    from kanpde.cli import main

    _failing_writes(monkeypatch, "result.h5", times=1)
    assert main(["solve", POISSON1D, *STOPS, "--out", str(tmp_path)]) == 2
    d = run_dir(tmp_path)
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "result.h5: could not be written (OSError" in err
    assert f"kanpde solve {POISSON1D} --resume {d} writes the results without training again" in err
    assert "--resume" in err.split("without training again")[0]  # said once, not again after
    assert err.count("--resume") == 1
    saved = load_checkpoint(d / "checkpoint.h5")
    assert saved["position"]["step"] == 40
    # the configuration the run started with (grid 5), not the trained model's grid 10: the
    # resume warned that the schedule's first stage "coarsens the grid from 10 to 5"
    assert json.loads(saved["config"])["model"]["grid"] == 5
    assert main(["solve", POISSON1D, "--resume", str(d), "--quiet"]) == 0  # room again
    assert "warning" not in capsys.readouterr().err
    assert kanpde.load(d).metrics["steps"] == 40
    assert kanpde.load(d).config["model"]["grid"] == 10


def test_ctrl_c_in_a_run_resumed_after_a_stop_keeps_its_checkpoint(
    tmp_path, capsys, monkeypatch, terminal_signals
):
    # A run stopped by repeated failures leaves its results so far and its checkpoint; Ctrl-C
    # in its resumed run saw both files, called the run finished and deleted the checkpoint.
    from kanpde import training
    from kanpde.cli import main

    original = training.Trainer._grad
    calls = [0]

    def stopped(self):
        calls[0] += 1
        if calls[0] == 26:
            raise TrainingStopped("stopped")
        return original(self)

    monkeypatch.setattr(training.Trainer, "_grad", stopped)
    assert main(["solve", POISSON1D, *STOPS, "--out", str(tmp_path / "cut")]) == 1
    d = run_dir(tmp_path / "cut")
    assert (d / "result.h5").exists() and (d / "checkpoint.h5").exists()
    monkeypatch.setattr(training.Trainer, "_grad", original)
    _signals_at(monkeypatch, 3, signal.SIGINT)
    assert main(["solve", POISSON1D, "--resume", str(d), "--quiet"]) == 130
    assert f"checkpoint saved in {d / 'checkpoint.h5'}" in capsys.readouterr().err
    # the results so far no longer describe the run: a resumed run removes them
    assert sorted(p.name for p in d.iterdir()) == ["checkpoint.h5"]
    assert load_checkpoint(d / "checkpoint.h5")["position"]["step"] == 23


def test_ctrl_c_after_the_results_are_written_says_the_run_finished(tmp_path, capsys, monkeypatch):
    from kanpde import training
    from kanpde.cli import main

    original = training.save_run

    def written_then_interrupted(run, out):
        original(run, out)
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "save_run", written_then_interrupted)
    assert main(["solve", POISSON1D, *STOPS, "--out", str(tmp_path)]) == 130
    d = run_dir(tmp_path)
    assert f"interrupted, but the run had finished: {d / 'result.h5'}" in capsys.readouterr().err
    assert sorted(p.name for p in d.iterdir()) == ["result.h5"]
    assert kanpde.load(d).metrics["steps"] == 40


def test_ctrl_c_when_the_checkpoint_cannot_be_written_is_still_an_interrupt(
    tmp_path, capsys, monkeypatch, terminal_signals
):
    # the write's ResultsError replaced the KeyboardInterrupt: exit 2, no way to continue
    from kanpde.cli import main

    _failing_writes(monkeypatch, "checkpoint.h5", times=3)  # step 10's, 20's and Ctrl-C's
    _signals_at(monkeypatch, 26, signal.SIGINT)
    assert main(["solve", POISSON1D, *STOPS, "--out", str(tmp_path)]) == 130
    err = capsys.readouterr().err
    assert err.count("checkpoint.h5: could not be written") == 3  # warnings, one line each
    assert "the previous checkpoint (if any) is kept" in err
    assert "nothing to resume" in err


def test_a_second_sigterm_while_the_stop_is_saved_does_not_kill_the_run(
    tmp_path, capsys, monkeypatch, terminal_signals
):
    # after the first SIGTERM the process was back on the default action: a second one during
    # the stop's checkpoint killed it, leaving a temporary file and no checkpoint
    from kanpde import training
    from kanpde.cli import main

    _signals_at(monkeypatch, 26, signal.SIGTERM)
    original = training.Trainer.save_checkpoint

    def impatient(self):
        signal.raise_signal(signal.SIGTERM)
        return original(self)

    monkeypatch.setattr(training.Trainer, "save_checkpoint", impatient)
    no_regular = [*STOPS, "--checkpoint-every", "0"]  # the stop's checkpoint is the only one
    assert main(["solve", POISSON1D, *no_regular, "--out", str(tmp_path)]) == 143
    d = run_dir(tmp_path)
    assert f"checkpoint saved in {d / 'checkpoint.h5'}" in capsys.readouterr().err
    assert sorted(p.name for p in d.iterdir()) == ["checkpoint.h5"]
    assert load_checkpoint(d / "checkpoint.h5")["position"]["step"] == 26


def test_sigterm_while_the_results_are_written_waits_for_them(
    tmp_path, capsys, monkeypatch, terminal_signals
):
    from kanpde import training
    from kanpde.cli import main

    original = training.save_run

    def terminated(run, out):
        signal.raise_signal(signal.SIGTERM)
        return original(run, out)

    monkeypatch.setattr(training, "save_run", terminated)
    assert main(["solve", POISSON1D, *STOPS, "--out", str(tmp_path)]) == 143
    d = run_dir(tmp_path)
    assert "interrupted, but the run had finished" in capsys.readouterr().err
    assert sorted(p.name for p in d.iterdir()) == ["result.h5"]


def test_sigterm_during_setup_leaves_no_run_directory(
    tmp_path, capsys, monkeypatch, terminal_signals
):
    from kanpde import training
    from kanpde.cli import main

    def terminated(*args, **kw):
        signal.raise_signal(signal.SIGTERM)

    monkeypatch.setattr(training, "test_set", terminated)
    assert main(["solve", POISSON1D, *SMALL, "--out", str(tmp_path / "runs")]) == 143
    err = capsys.readouterr().err
    assert err == "kanpde: interrupted before the first checkpoint; nothing to resume\n"
    assert not (tmp_path / "runs").exists()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handed back


def test_sigterm_then_sighup_is_one_request_to_stop(
    tmp_path, capsys, monkeypatch, terminal_signals
):
    # systemd sends both; the second counted as "stop at once" and no checkpoint was saved
    from kanpde.cli import main

    _signals_at(monkeypatch, 26, signal.SIGTERM, signal.SIGHUP)
    assert main(["solve", POISSON1D, *STOPS, "--out", str(tmp_path)]) == 143  # SIGTERM's
    d = run_dir(tmp_path)
    assert f"checkpoint saved in {d / 'checkpoint.h5'}" in capsys.readouterr().err
    assert load_checkpoint(d / "checkpoint.h5")["position"]["step"] == 26


def test_a_stop_in_the_last_step_of_a_timed_run_is_still_a_stop(monkeypatch, terminal_signals):
    # the flag was forgotten when the time ran out in the same step: the run ended normally
    from kanpde import training

    original = training.Trainer._grad

    def last(self):
        if self.max_seconds is not None and self.train_time > 0:
            self.train_time = 1e9  # this step spends the budget
            signal.raise_signal(signal.SIGTERM)
        return original(self)

    monkeypatch.setattr(training.Trainer, "_grad", last)
    with pytest.raises(KeyboardInterrupt):
        kanpde.solve(POISSON1D, schedule="5:adam=50", points={"interior": 40, "test": 21},
                     max_seconds=5.0, progress=False, device="cpu")  # fmt: skip


def test_signals_held_deliver_to_the_users_handlers_and_drop_kanpdes_own_stops():
    from kanpde.signals import signals_held

    seen = []
    previous = {
        signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler),
        signal.SIGTERM: signal.signal(signal.SIGTERM, lambda s, f: seen.append(s)),
    }
    try:
        with signals_held(deliver=False):  # a stopping caller: Ctrl-C dropped, the user's kept
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGTERM)
        assert seen == [signal.SIGTERM]
        with pytest.raises(KeyboardInterrupt):  # delivered: every one, in turn
            with signals_held():
                signal.raise_signal(signal.SIGINT)
                signal.raise_signal(signal.SIGTERM)
        assert seen == [signal.SIGTERM] * 2
        with pytest.raises(OSError, match="disk full"):  # a failed block: its error is the news
            with signals_held():
                signal.raise_signal(signal.SIGINT)
                raise OSError("disk full")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@pytest.mark.parametrize("when", [1, 3])  # a stop while setting, or while restoring, handlers
def test_every_old_handler_comes_back_when_a_stop_lands_between_two_of_them(when, monkeypatch):
    from kanpde import signals

    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP)}
    real, calls = signal.signal, [0]

    def stop_after(sig, handler):  # a signal handled right after this call raises
        old = real(sig, handler)
        calls[0] += 1
        if calls[0] == when:
            raise KeyboardInterrupt
        return old

    monkeypatch.setattr(signal, "signal", stop_after)
    with pytest.raises(KeyboardInterrupt):
        with signals.installed({sig: signals.stop_now for sig in before}):
            pass
    monkeypatch.setattr(signal, "signal", real)
    assert {sig: signal.getsignal(sig) for sig in before} == before


def test_a_run_resumed_twice_at_once_is_refused(tmp_path):
    # both trained the same run, and each cleared temporary files the other was writing
    import fcntl

    fd = os.open(tmp_path, os.O_RDONLY)  # as a first `--resume` of this run holds it
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        with pytest.raises(ValueError, match="another process is training this run"):
            kanpde.solve(POISSON1D, resume=tmp_path, progress=False)
    finally:
        os.close(fd)
    with pytest.raises(ValueError) as e:  # free again: on to the run's own checks
        kanpde.solve(POISSON1D, resume=tmp_path, progress=False)
    assert "another process" not in str(e.value)


def test_a_run_still_training_refuses_a_resume_and_a_second_run(tmp_path):
    # Only a resume took the lock: a resume of a run still training, or a second run given
    # the same out, trained into its directory, cleared its temporary files and overwrote its
    # checkpoint and results (the last to finish won result.h5)
    out, tried = tmp_path / "run", []

    def second(trainer, row):
        if not tried:
            for kw in ({"resume": out}, {"out": out}, {"out": out, "overwrite": True}):
                with pytest.raises(ValueError) as e:
                    kanpde.solve(POISSON1D, progress=False, **kw)
                tried.append(str(e.value))

    run = kanpde.solve(POISSON1D, schedule="5:adam=4", out=out, progress=False, log_every=1,
                       checkpoint_every=1, callback=second)  # fmt: skip
    assert tried == [
        f"{out}: another process is training this run",
        f"{out}: another process is training a run in this directory",
        f"{out}: another process is training a run in this directory",
    ]
    assert run.metrics["steps"] == 4 and sorted(os.listdir(out)) == ["result.h5"]
    # finished, it holds no lock: a resume gets to the run's own check
    with pytest.raises(ValueError, match=r"checkpoint.h5: the run has finished \(result.h5\)$"):
        kanpde.solve(POISSON1D, resume=out, progress=False)


def test_a_file_system_without_locks_trains_with_a_warning(tmp_path, monkeypatch):
    # every run takes the lock now: on a mount without flock (ENOLCK) every solve with out
    # failed with a traceback
    import errno
    import fcntl

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with pytest.warns(kanpde.KanpdeWarning, match=r"run: not locked against a second process "
                      r"\(OSError: \[Errno 37\] No locks available\)"):  # fmt: skip
        run = kanpde.solve(POISSON1D, schedule="5:adam=2", out=tmp_path / "run", progress=False)
    assert run.metrics["steps"] == 2 and (tmp_path / "run" / "result.h5").is_file()


def test_a_run_directory_made_for_a_call_that_fails_is_removed(tmp_path):
    # made to be locked before the call's checks; an error leaves nothing behind
    out = tmp_path / "a" / "b"
    with pytest.raises(ValueError, match="interior"):
        kanpde.solve(POISSON1D, out=out, points={"interior": 0}, progress=False)
    assert os.listdir(tmp_path) == []
    (tmp_path / "kept").mkdir()  # one that was there stays
    with pytest.raises(ValueError, match="interior"):
        kanpde.solve(POISSON1D, out=tmp_path / "kept", points={"interior": 0}, progress=False)
    assert (tmp_path / "kept").is_dir()


def test_a_resume_on_another_number_of_processes_is_warned_of(tmp_path, monkeypatch):
    # torchrun's ranks split the sums over points: a run stopped under torchrun and continued
    # by the single-process command it printed ended otherwise, without a word
    import warnings

    from kanpde.checkpoint import save_checkpoint

    kw = dict(schedule="5:adam=20", checkpoint_every=10, progress=False)
    for d in ("same", "other"):
        with monkeypatch.context() as m:
            kill_after_checkpoint(m, 10)
            with pytest.raises(Killed):
                kanpde.solve(POISSON1D, out=tmp_path / d, **kw)
    path = tmp_path / "other" / "checkpoint.h5"
    state = load_checkpoint(path)
    config = json.loads(state["config"])
    assert config["world_size"] == 1
    state["config"] = json.dumps({**config, "world_size": 2})  # as two ranks record it
    save_checkpoint(path, state)
    with pytest.warns(kanpde.KanpdeWarning, match=r"the run trained on 2 process\(es\) and "
                      r"goes on on 1: .*not end bit for bit.* \(torchrun --nproc-per-node 2 "
                      r"continues it alike\)$"):  # fmt: skip
        run = kanpde.solve(POISSON1D, resume=tmp_path / "other", progress=False)
    assert run.config["world_size"] == 1 and run.metrics["steps"] == 20
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kanpde.solve(POISSON1D, resume=tmp_path / "same", progress=False)


def test_the_continue_command_of_a_torchrun_run_is_a_torchrun_command(tmp_path, capsys,
                                                                       monkeypatch):  # fmt: skip
    # it printed `kanpde solve ... --resume`, which continued on one process
    import argparse

    from kanpde import cli, distributed

    (tmp_path / "checkpoint.h5").write_bytes(b"")
    stop = KeyboardInterrupt()
    stop.saved = True
    args = argparse.Namespace(problem="my problem.py")
    monkeypatch.setattr(distributed, "world", lambda: 4)
    cli._interrupted(args, tmp_path, [], stop)
    assert capsys.readouterr().err.splitlines()[-2:] == [
        f"continue with: torchrun --nproc-per-node 4 -m kanpde solve 'my problem.py' --resume "
        f"{tmp_path}",
        "(on several machines, with torchrun's options of the first run)",
    ]
    monkeypatch.setattr(distributed, "world", lambda: 1)
    cli._interrupted(args, tmp_path, [], stop)
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"continue with: kanpde solve 'my problem.py' --resume {tmp_path}"
    )


def test_solve_stopped_by_ctrl_c_raises_interrupted_naming_its_checkpoint(
    tmp_path, monkeypatch, terminal_sigint
):
    # the attributes were only read through the command line's messages
    from kanpde import training

    original = training.Trainer._grad

    def grad(self):  # Ctrl-C at the 5th evaluation
        if self.evals == 4:
            signal.raise_signal(signal.SIGINT)
        return original(self)

    monkeypatch.setattr(training.Trainer, "_grad", grad)
    kw = dict(schedule="3:adam=20@1e-2", points={"interior": 40, "boundary": 16},
              progress=False, device="cpu")  # fmt: skip
    with pytest.raises(kanpde.Interrupted) as e:
        kanpde.solve(POISSON1D, out=tmp_path, **kw)
    stop = e.value
    assert isinstance(stop, KeyboardInterrupt)
    assert stop.checkpoint == tmp_path / "checkpoint.h5" and stop.checkpoint.is_file()
    assert stop.saved and not stop.finished and stop.result is None
    assert load_checkpoint(stop.checkpoint)["position"]["step"] == 5  # the step in progress
    assert str(stop) == (
        f"training stopped by SIGINT at step 5; the run so far is this exception's .run; "
        f"{tmp_path / 'checkpoint.h5'} holds this moment (resume= continues it)"
    )
    # the run so far, in memory: its model is the checkpoint's (nothing else written)
    saved = load_checkpoint(stop.checkpoint)
    state = saved["model_state"]
    assert stop.run.metrics["steps"] == 5 and stop.run.path is None
    assert all(np.array_equal(stop.run.state[k], state[k].numpy()) for k in state)
    rows = json.loads(saved["history"])["rows"]
    assert stop.run.history["loss"].tolist() == [r["loss"] for r in rows]
    assert not (tmp_path / "result.h5").exists()
    x = stop.run.solution["x"]
    ref = np.sin(np.pi * x)  # poisson1d's exact solution
    assert stop.run.metrics["mse"] == pytest.approx(np.mean((stop.run.predict(x) - ref) ** 2))
    monkeypatch.setattr(training.Trainer, "_grad", original)
    run = kanpde.solve(POISSON1D, resume=tmp_path, out=tmp_path, progress=False)
    assert run.metrics["steps"] == 20 and (tmp_path / "result.h5").is_file()
    # without out (a notebook's run): no checkpoint, the training so far in .run
    monkeypatch.setattr(training.Trainer, "_grad", grad)
    with pytest.raises(kanpde.Interrupted) as e:
        kanpde.solve(POISSON1D, **kw)
    assert e.value.checkpoint is None and e.value.run.metrics["steps"] == 5
    assert str(e.value) == (
        "training stopped by SIGINT at step 5; the run so far is this exception's .run"
    )


# -- checkpoints and rollbacks, exactly (found by mutation testing) ----------------------------


def test_checkpoint_round_trip_keeps_types_keys_and_dtypes(tmp_path):
    # tuples came back as lists and int keys (Adam's per-parameter state) as strings
    from kanpde.checkpoint import save_checkpoint

    state = {
        "f32": torch.arange(3, dtype=torch.float32),
        "step": torch.tensor(7.0, dtype=torch.float32),  # 0-d, as Adam's step
        "ints": torch.tensor([1, 2], dtype=torch.int64),
        "nested": {0: (1, 2.5, None, "s", True), "k": [torch.ones(2, dtype=torch.float64)]},
        "array": np.arange(4),
    }
    back = load_checkpoint(save_checkpoint(tmp_path / "checkpoint.h5", state))
    assert set(back) == set(state)
    for key in ("f32", "step", "ints"):
        assert back[key].dtype == state[key].dtype and torch.equal(back[key], state[key]), key
    assert back["step"].ndim == 0
    assert list(back["nested"]) == [0, "k"]
    assert back["nested"][0] == (1, 2.5, None, "s", True)
    assert isinstance(back["nested"][0], tuple) and isinstance(back["nested"]["k"], list)
    assert torch.equal(back["nested"]["k"][0], torch.ones(2, dtype=torch.float64))
    np.testing.assert_array_equal(back["array"], np.arange(4))


def test_unreadable_checkpoints_are_one_line_results_errors(tmp_path):
    # each case once passed silently (a foreign HDF5 file) or as a raw OSError (a truncated one)
    def refused(path, fragment):
        with pytest.raises(ResultsError) as e:
            load_checkpoint(path)
        assert fragment in str(e.value) and "\n" not in str(e.value), str(e.value)

    refused(tmp_path / "nowhere" / "checkpoint.h5", "no such run directory")
    refused(tmp_path, "no checkpoint to resume from")
    (tmp_path / "result.h5").write_bytes(b"")
    refused(tmp_path, "the run has finished (result.h5)")
    with h5py.File(tmp_path / "checkpoint.h5", "w") as f:
        f.attrs["format"] = "something-else"
    refused(tmp_path, "not a kanpde checkpoint")
    (tmp_path / "checkpoint.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    refused(tmp_path / "checkpoint.h5", "unreadable or corrupt checkpoint")


def test_a_checkpoint_restores_the_position_counters_and_clock(tmp_path):
    # the failures count, the timed stage's decay so far, earlier processes' wall time and
    # the resampled points were each once lost on resume
    t = make_trainer("3:adam=5,adam=5", bad=())
    drawn = t.residuals.interior.x.clone()
    t.residuals.resample(seed=5)
    t.stage, t.i, t.step, t.evals, t.failures = 1, 3, 8, 11, 2
    t._clock, t._decayed, t.train_time, t.wall_before = (1.5, 4.0), 0.25, 2.5, 100.0
    t.checkpoint_path = tmp_path / "checkpoint.h5"
    t.save_checkpoint()
    u = make_trainer("3:adam=5,adam=5", bad=())
    u.load_state_dict(load_checkpoint(t.checkpoint_path))
    assert (u.stage, u.i, u.step, u.evals, u.failures) == (1, 3, 8, 11, 2)
    assert (u._clock, u._decayed, u.train_time) == ((1.5, 4.0), 0.25, 2.5)
    assert 100.0 < u.wall_before < 200.0 and u._resumed
    assert torch.equal(u.residuals.interior.x, t.residuals.interior.x)
    assert not torch.equal(u.residuals.interior.x, drawn)


def test_a_nan_right_after_a_grid_extension_rolls_back_to_the_extended_model():
    # Calls: 1 before training, steps 1-5, the log at 5, the loss before and after the
    # extension, then step 6's gradient (call 10). The rollback target must be the extended
    # model: the last log's (grid 3) could not even be loaded into it.
    trainer = make_trainer("3:adam=5@1e-2,6:adam=5@1e-2", bad={10})
    trainer.run()
    events = [(e["event"], e["step"]) for e in trainer.history.events]
    assert events == [("extend_grid", 5), ("nonfinite", 5)]
    assert trainer.step == 10 and trainer.model.grid == 6
    assert bool(torch.isfinite(flat(trainer.model)).all())


def test_nan_in_lbfgs_rolls_back_to_the_stage_start_then_adam_at_its_default_rate(monkeypatch):
    # Calls: 1 before training, 1 for the scale, then the first L-BFGS call's evaluations:
    # the NaN of call 6 meets parameters in a line search, which must not be kept.
    from kanpde.training import Trainer

    trainer = make_trainer("3:lbfgs=20", bad={6})
    start = flat(trainer.model)
    seen, failure = [], Trainer._failure

    def spy(self, action, stop=True):
        seen.append(flat(self.model))
        failure(self, action, stop)

    monkeypatch.setattr(Trainer, "_failure", spy)
    trainer.run()
    assert len(seen) == 1 and torch.equal(seen[0], start)
    assert trainer._adam.param_groups[0]["lr"] == 1e-3  # the fallback's, no decay
    assert trainer.step == 20


class _NaNGradient(Poisoned):
    """A finite loss whose gradient is NaN at the chosen evaluations (sqrt's slope at 0)."""

    def __call__(self):
        loss, terms = self.residuals()
        self.calls += 1
        if self.calls in self.bad:
            p = next(self.residuals.model.parameters())
            loss = loss + torch.sqrt(p * 0).sum()  # adds 0, with gradient 0 * inf
        return loss, terms


def test_a_finite_loss_with_a_nan_gradient_is_a_failure_before_the_step():
    # only the loss was checked: Adam took the NaN step, and the failure showed a step later
    trainer = make_trainer("3:adam=30@1e-2", bad=())
    trainer.residuals = _NaNGradient(trainer.residuals.residuals, {12})  # step 10's gradient
    trainer.run()
    events = [(e["event"], e["step"]) for e in trainer.history.events]
    assert events == [("nonfinite", 9)]  # taken with 9 steps done
    assert trainer.step == 30 and bool(torch.isfinite(flat(trainer.model)).all())


def test_nan_in_adam_rolls_back_adams_moments_and_step_count_too():
    # the snapshot held Adam's live state: a rollback kept the moments it should undo
    trainer = make_trainer("3:adam=30@1e-2", bad={12})  # step 10's gradient, 9 steps done
    trainer.run()
    assert [(e["event"], e["step"]) for e in trainer.history.events] == [("nonfinite", 9)]
    # back to the log of step 5, then the 21 steps 10..30
    assert {float(s["step"]) for s in trainer._adam.state.values()} == {26.0}


def test_a_run_resumed_mid_stage_keeps_adams_decayed_rate(terminal_sigint):
    # resuming set the stage's starting rate again: the decay started over
    schedule = [{"grid": 3, "adam": 30, "lr": 1e-2, "decay": 0.1}]
    trainer = interrupted(schedule, at=15)
    trainer.load_state_dict(trainer.state_dict())
    trainer.run()
    assert trainer.step == 30
    assert trainer._adam.param_groups[0]["lr"] == pytest.approx(1e-3, rel=1e-12)


def test_a_budget_must_be_positive():
    # max_seconds=0 was accepted: a run that trains nothing
    from kanpde.training import Trainer

    trainer = make_trainer("3:adam=1", bad=())
    for bad in (0, -1.0, True):
        with pytest.raises(ValueError, match="max_seconds must be a finite number > 0"):
            Trainer(trainer.residuals.residuals, trainer.stages, max_seconds=bad)


def test_failures_between_two_logs_keep_lowering_adams_rate():
    # a rollback took the snapshot's rate back: a second failure before the next log set
    # 1e-3 again instead of 1e-4
    trainer = make_trainer("3:adam=30@1e-2", bad={12, 13})  # step 10's gradient, twice
    trainer.run()
    actions = [e["action"] for e in trainer.history.events if e["event"] == "nonfinite"]
    assert [a.rsplit(" ", 1)[1] for a in actions] == ["1.0e-03", "1.0e-04"]
    assert trainer._adam.param_groups[0]["lr"] == pytest.approx(1e-4, rel=1e-12)

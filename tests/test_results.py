"""Independent tests of results files: solve → result.h5 → load → the same model and numbers."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from stops import Killed, kill_after_checkpoint

import kanpde
from kanpde.results import ResultsError, Run, load, save_run, write_atomic

ROOT = Path(__file__).resolve().parents[1]
POISSON = ROOT / "problems" / "poisson2d.py"
SCHEDULE = [{"grid": 3, "lbfgs": 3}, {"grid": 6, "lbfgs": 3}]
POINTS = {"interior": 100, "boundary": 40, "test": 11}


@pytest.fixture(scope="module")
def solved(tmp_path_factory):
    """One tiny poisson2d run written to a fresh directory (single-threaded grid extension)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path_factory.mktemp("run")
        run = kanpde.solve(
            str(POISSON),
            schedule=SCHEDULE,
            points=POINTS,
            out=out,
            progress=False,
            log_every=1,
            device="cpu",
        )
    finally:
        torch.set_num_threads(threads)
    return run, out


def test_solve_writes_result_and_nothing_else(solved):
    run, out = solved
    path = out / "result.h5"
    assert path.is_file()
    assert run.path == path
    # the checkpoint is removed once the result is written; no temporary files are left
    assert sorted(os.listdir(out)) == ["result.h5"]


def test_load_returns_config_history_solution_metrics(solved):
    run, out = solved
    r = load(out / "result.h5")
    assert isinstance(r, Run)
    assert r.path == out / "result.h5"
    assert r.config["problem"] == "poisson2d"
    assert r.config["dtype"] == "float64"
    assert r.config["model"]["grid"] == 6  # the model as trained, after grid extension
    assert r.config["model"]["width"] == [2, 10, 1]
    assert [s["grid"] for s in r.config["schedule"]] == [3, 6]
    assert [s["optimizer"] for s in r.config["schedule"]] == ["lbfgs", "lbfgs"]
    assert r.config["points"]["interior"] == 100 and r.config["points"]["boundary"] == 40
    assert r.config["parameters"] == sum(
        np.asarray(v).size
        for k, v in r.state.items()
        if k.endswith(("coef", "scale_base", "scale_spline"))
    )
    # solution on the 11 x 11 test grid
    assert set(r.solution) == {"x", "pred", "ref", "error"}
    assert r.solution["x"].shape == (121, 2)
    assert r.solution["pred"].shape == r.solution["ref"].shape == (121, 1)
    assert r.solution["x"].dtype == np.float64
    np.testing.assert_array_equal(r.solution["error"], r.solution["pred"] - r.solution["ref"])
    xs = r.solution["x"]
    ref = np.sin(np.pi * xs[:, :1]) * np.sin(np.pi * xs[:, 1:])
    np.testing.assert_allclose(r.solution["ref"], ref, rtol=0, atol=1e-15)
    # metrics agree with the stored solution
    err = r.solution["error"]
    assert r.metrics["mse"] == pytest.approx(float(np.mean(err**2)), rel=1e-12)
    rel = np.linalg.norm(err) / np.linalg.norm(r.solution["ref"])
    assert r.metrics["rel_l2"] == pytest.approx(float(rel), rel=1e-12)
    assert r.metrics["max_err"] == pytest.approx(float(np.abs(err).max()), rel=1e-12)
    assert r.metrics["steps"] == run.metrics["steps"]
    assert r.metrics["loss"] == run.metrics["loss"]
    # attributes
    assert r.names == ("x", "y") and r.outputs == ("u",)
    assert r.attrs["problem"] == "poisson2d"
    assert r.attrs["kanpde_version"] == kanpde.__version__
    assert len(r.attrs["problem_hash"]) == 64
    # events: the grid extension 3 -> 6
    ext = [e for e in r.events if e["event"] == "extend_grid"]
    assert len(ext) == 1 and ext[0]["grid"] == 6


def test_history_columns(solved):
    run, out = solved
    h = load(out).history  # a directory works too
    for col in (
        "step",
        "stage",
        "grid",
        "loss",
        "time",
        "evals",
        "loss_pde",
        "loss_dirichlet",
        "mse",
        "rel_l2",
        "max_err",
    ):
        assert col in h, col
    n = len(h["step"])
    assert n >= 2 and all(len(v) == n for v in h.values())
    assert h["step"][0] == 0 and h["step"][-1] == run.metrics["steps"]
    assert np.all(np.diff(h["step"]) >= 0)
    assert set(np.unique(h["grid"])) <= {3.0, 6.0} and h["grid"][-1] == 6
    # the logged total is the weighted sum of the logged terms (poisson2d: pde weight 0.01)
    np.testing.assert_allclose(h["loss"], 0.01 * h["loss_pde"] + h["loss_dirichlet"], rtol=1e-12)
    for k, v in run.history.items():
        np.testing.assert_array_equal(h[k], v)


def test_reloaded_model_reproduces_the_prediction_exactly(solved):
    _, out = solved
    r = load(out / "result.h5")
    model = r.model()
    assert next(model.parameters()).dtype == torch.float64
    assert model.grid == 6
    x = torch.as_tensor(r.solution["x"])
    with torch.no_grad():
        pred = model(x).numpy()
    assert pred.dtype == np.float64
    assert np.abs(pred - r.solution["pred"]).max() == 0.0


def test_predict_takes_numpy_points_of_any_type(solved):
    _, out = solved
    r = load(out / "result.h5")
    x = r.solution["x"]
    assert np.abs(r.predict(x) - r.solution["pred"]).max() == 0.0
    # batches join (matrix products of another size may round differently)
    assert np.abs(r.predict(x, batch=7) - r.solution["pred"]).max() <= 1e-14
    # a NumPy integer (a length, a computed batch size) was refused as no integer
    assert np.abs(r.predict(x, batch=np.int64(7)) - r.predict(x, batch=7)).max() == 0.0
    assert (
        np.abs(
            r.predict(x.astype(np.float32)) - r.predict(x.astype(np.float32).astype(float))
        ).max()
        == 0.0
    )
    assert r.predict(x[3]).shape == (1,)
    assert abs(r.predict(x[3])[0] - r.solution["pred"][3, 0]) <= 1e-14
    assert r.predict(x[:0]).shape == (0, 1)
    with pytest.raises(ValueError, match=r"predict: x must be \(N, 2\) points \(x, y\)"):
        r.predict(x[:, :1])
    flipped = np.flip(x, axis=0)  # negative strides, which torch cannot take as they are
    assert np.abs(r.predict(flipped) - r.predict(flipped.copy())).max() == 0.0
    t = torch.as_tensor(x).requires_grad_()
    assert np.abs(r.predict(t) - r.predict(x)).max() == 0.0
    for bad, message in ((0, "batch must be a positive integer, got 0"),
                         (-1, "batch must be a positive integer, got -1"),
                         (2.0, "batch must be a positive integer, got 2.0")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            r.predict(x, batch=bad)
    with pytest.raises(ValueError, match="predict: x is complex"):
        r.predict(x + 1j)


def test_save_run_round_trip(solved, tmp_path):
    run, _ = solved
    path = save_run(run, tmp_path / "copy.h5")
    assert path == tmp_path / "copy.h5"
    r = load(path)
    assert r.config == load(run.path).config
    for k in run.state:
        np.testing.assert_array_equal(r.state[k], run.state[k])
    # overwriting an existing file is atomic too and leaves no temporary file
    save_run(run, tmp_path / "copy.h5")
    assert sorted(os.listdir(tmp_path)) == ["copy.h5"]


def _one_line(err: ResultsError, path: Path) -> str:
    msg = str(err)
    assert "\n" not in msg
    assert str(path) in msg
    assert err.__suppress_context__ or err.__cause__ is None
    return msg


def test_truncated_file(solved, tmp_path):
    _, out = solved
    data = (out / "result.h5").read_bytes()
    bad = tmp_path / "truncated.h5"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ResultsError) as e:
        load(bad)
    _one_line(e.value, bad)


def test_random_bytes_file(tmp_path):
    bad = tmp_path / "random.h5"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ResultsError) as e:
        load(bad)
    _one_line(e.value, bad)


def test_other_hdf5_file(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("data", data=np.arange(5))
    with pytest.raises(ResultsError) as e:
        load(other)
    assert "not a kanpde results file" in _one_line(e.value, other)


def test_kanpde_file_missing_parts(solved, tmp_path):
    _, out = solved
    bad = tmp_path / "partial.h5"
    bad.write_bytes((out / "result.h5").read_bytes())
    with h5py.File(bad, "a") as f:
        del f["history"]
    with pytest.raises(ResultsError) as e:
        load(bad)
    _one_line(e.value, bad)
    with h5py.File(bad, "a") as f:
        f.attrs["config"] = "{not json"
    with pytest.raises(ResultsError) as e:
        load(bad)
    _one_line(e.value, bad)


def test_missing_file(tmp_path):
    with pytest.raises(ResultsError, match="not found") as e:
        load(tmp_path / "nope.h5")
    _one_line(e.value, tmp_path / "nope.h5")
    with pytest.raises(ResultsError, match="not found"):
        load(tmp_path)  # a directory without result.h5


def test_atomic_writer_leaves_no_temp_files(tmp_path):
    target = tmp_path / "sub" / "file.h5"

    def write(tmp):
        Path(tmp).write_bytes(b"payload")

    write_atomic(target, write)
    assert target.read_bytes() == b"payload"
    assert sorted(os.listdir(target.parent)) == ["file.h5"]

    def failing(tmp):
        Path(tmp).write_bytes(b"half")
        raise OSError(28, "No space left on device")

    # one line naming the file (h5py's errors on a full disk are many lines of traceback)
    with pytest.raises(ResultsError, match=r"file.h5: could not be written \(OSError: \[Errno 28"):
        write_atomic(target, failing)
    # the old file is intact and the temporary file is gone
    assert target.read_bytes() == b"payload"
    assert sorted(os.listdir(target.parent)) == ["file.h5"]
    with pytest.raises(ResultsError):
        write_atomic(tmp_path / "new.h5", failing)

    def buggy(tmp):  # a programming error is no failed write: it goes on as it is
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="^a bug$"):
        write_atomic(tmp_path / "new.h5", buggy)
    assert not (tmp_path / "new.h5").exists()
    assert sorted(os.listdir(tmp_path)) == ["sub"]


def _replace(group, name, data):
    del group[name]
    group.create_dataset(name, data=data)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda f: f["model/state"].__delitem__("layers.1.coef"),
         "its model state does not fit its model config (Error(s) in loading state_dict"),
        (lambda f: _replace(f["model/state"], "layers.0.coef", np.zeros((1, 1, 1))),
         "its model state does not fit its model config (Error(s) in loading state_dict"),
        (lambda f: f.attrs.__setitem__("config", "[1, 2]"),
         "corrupt results file (its config is of type list, not dict)"),
        (lambda f: f.attrs.__setitem__("config", '{"model": [1]}'),
         "corrupt results file (its config's model is of type list, not dict)"),
        (lambda f: f.attrs.__setitem__("events", '{"a": 1}'),
         "corrupt results file (its events is of type dict, not list)"),
        (lambda f: f.attrs.__setitem__("events", "[1, 2]"),
         "corrupt results file (its event is of type int, not dict)"),
    ],
)  # fmt: skip
def test_a_results_file_edited_into_inconsistency_is_one_line(solved, tmp_path, capsys, damage,
                                                              message):  # fmt: skip
    # valid HDF5 whose parts disagree: plot --kind network and symbolic showed tracebacks
    # (load_state_dict's RuntimeError, an AttributeError, a KeyError)
    import shutil

    from kanpde.cli import main

    _, out = solved
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    with h5py.File(copy / "result.h5", "a") as f:
        damage(f)
    with pytest.raises(ResultsError) as e:
        load(copy).model()
    assert str(e.value).startswith(f"{copy / 'result.h5'}: {message}")
    assert "\n" not in str(e.value)
    capsys.readouterr()
    assert main(["plot", str(copy), "--kind", "network", "--out", str(tmp_path / "n.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"kanpde: error: {copy / 'result.h5'}: "), err


def test_a_run_of_ones_own_without_a_model_config_loads(tmp_path):
    # kanpde.Run is public and save_run writes a config without "model"; load() refused it
    run = Run(config={"problem": "p"}, metrics={"mse": 0.5}, history={}, solution={}, state={})
    back = load(save_run(run, tmp_path))
    assert back.config == {"problem": "p"} and back.metrics == {"mse": 0.5}


_FULL_DISK = """
import resource, signal, sys
import numpy as np
from kanpde.checkpoint import save_checkpoint
from kanpde.results import ResultsError, Run, save_run
# writes past 100 kB fail with EFBIG, as on a full disk with ENOSPC
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, resource.RLIM_INFINITY))
state = {f"a{i}": np.arange(200.0) + i for i in range(300)}
run = Run(config={}, metrics={}, history={"step": np.arange(20_000)}, solution={}, state={})
for i in range(3):
    for name, save in [("checkpoint", lambda: save_checkpoint(sys.argv[1] + "/c.h5", state)),
                       ("result", lambda: save_run(run, sys.argv[1]))]:
        try:
            save()
        except ResultsError as e:
            print(name, e)
print("end")
"""


def test_a_full_disk_is_one_line_per_write(tmp_path):
    # HDF5 writing to a full disk itself printed ~1000 lines of 'Exception ignored' per
    # checkpoint and then crashed the interpreter (exit 139); built in memory and written by
    # Python, each failed write is one ResultsError and nothing else
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _FULL_DISK, str(tmp_path)], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)  # fmt: skip
    assert proc.returncode == 0 and proc.stderr == "", (proc.returncode, proc.stderr[-2000:])
    lines = proc.stdout.splitlines()
    assert lines[-1] == "end" and len(lines) == 7
    for name, line in zip(["checkpoint", "result"] * 3, lines):
        file = "c.h5" if name == "checkpoint" else "result.h5"
        why = "could not be written (OSError: [Errno 27] File too large)"
        assert line == f"{name} {tmp_path / file}: {why}"
    assert os.listdir(tmp_path) == []  # no temporary file left


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_mlp_run_round_trip(tmp_path, dtype):
    run = kanpde.solve(
        str(POISSON),
        model={"type": "mlp", "width": [2, 8, 1], "activation": "tanh"},
        schedule="lbfgs=2",
        points=POINTS,
        out=tmp_path,
        progress=False,
        device="cpu",
        dtype=dtype,
    )
    r = load(run.path)
    assert r.config["model"]["type"] == "mlp" and r.config["dtype"] == dtype
    model = r.model()
    assert next(model.parameters()).dtype == getattr(torch, dtype)
    assert r.solution["pred"].dtype == np.dtype(dtype)
    with torch.no_grad():
        pred = model(torch.as_tensor(r.solution["x"])).numpy()
    assert np.abs(pred - r.solution["pred"]).max() == 0.0
    # predict answers in the run's dtype (catches: values always computed in float64)
    values = r.predict(r.solution["x"])
    assert values.dtype == np.dtype(dtype) and np.abs(values - pred).max() == 0.0


def test_problem_file_is_stored_absolute(tmp_path, monkeypatch):
    # Runs are read from other directories (notebooks, kanpde plot): a path relative to the
    # directory of the solve made plots of runs without an exact solution fail there.
    monkeypatch.chdir(ROOT)
    run = kanpde.solve(
        "problems/poisson1d.py",
        schedule="adam=2",
        points={"interior": 20, "boundary": 2, "test": 11},
        out=tmp_path,
        progress=False,
        device="cpu",
    )
    monkeypatch.chdir(tmp_path)
    stored = load(tmp_path).attrs["problem_file"]
    assert stored == str(ROOT / "problems" / "poisson1d.py") == run.attrs["problem_file"]


# --------------------------------------------------------------------- review fixes (results)


def test_written_files_follow_the_umask(tmp_path):
    # mkstemp made every result, checkpoint and table private (0600) whatever the umask.
    previous = os.umask(0o022)
    try:
        write_atomic(tmp_path / "a.h5", lambda tmp: Path(tmp).write_bytes(b"x"))
        os.umask(0o077)
        write_atomic(tmp_path / "b.h5", lambda tmp: Path(tmp).write_bytes(b"x"))
    finally:
        os.umask(previous)
    assert (tmp_path / "a.h5").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.h5").stat().st_mode & 0o777 == 0o600


def test_repr_of_a_run_is_short(solved):
    run, _ = solved
    text = repr(run)
    assert len(text) < 1000 and "metrics=" in text and "mse" in text  # was 40 kB of arrays


def test_loading_an_interrupted_run_points_to_resume(tmp_path):
    (tmp_path / "checkpoint.h5").write_bytes(b"")
    with pytest.raises(ResultsError, match="the run is training or was interrupted.*--resume") as e:
        load(tmp_path)
    _one_line(e.value, tmp_path / "result.h5")


def test_wall_time_of_a_resumed_run_counts_its_earlier_processes(tmp_path, monkeypatch):
    # It counted only the resuming process, so it could come out below the training time.
    import time

    from kanpde import training

    kw = dict(schedule="3:adam=30", points=POINTS, progress=False, device="cpu",
              log_every=5, checkpoint_every=10)  # fmt: skip
    calls = {"n": 0}
    original = training.Trainer._tick

    def pause_then_stop(self, index, stage):
        original(self, index, stage)
        calls["n"] += 1
        if calls["n"] == 12:
            time.sleep(1.0)  # wall time of the first process, not training
            self.stopped_cleanly = True  # between steps, as a first Ctrl-C stops
            raise KeyboardInterrupt

    monkeypatch.setattr(training.Trainer, "_tick", pause_then_stop)
    with pytest.raises(KeyboardInterrupt):
        kanpde.solve(str(POISSON), out=tmp_path, **kw)
    monkeypatch.setattr(training.Trainer, "_tick", original)
    # settings the run brings itself were silently ignored when given too (the CLI refused)
    clashes = [({"schedule": "5:lbfgs=10", "seed": 5}, "schedule, seed"),
               ({"points": {"interior": 50}, "model": {"grid": 4}}, "model, points")]  # fmt: skip
    for bad, names in clashes:
        with pytest.raises(ValueError, match=f"resume=.*: {names} cannot be given with resume"):
            kanpde.solve(str(POISSON), resume=tmp_path, progress=False, **bad)
    run = kanpde.solve(str(POISSON), resume=tmp_path, progress=False, seed=0)
    assert run.metrics["steps"] == 30
    assert run.metrics["wall_time"] >= 1.0 + run.metrics["train_time"] * 0.5, run.metrics
    assert load(tmp_path).metrics["wall_time"] == run.metrics["wall_time"]


class _WithUnknown(torch.nn.Module):
    """A KAN plus a learnable coefficient: a module of the user's own (no ``config()``)."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.k = torch.nn.Parameter(torch.tensor(0.5, dtype=torch.float64))

    def forward(self, x):
        return self.net(x)


def test_a_module_of_the_users_own_trains_saves_and_reloads(tmp_path):
    # solve(model=module) once failed on module.config(). An inverse problem: u'' k = -2π² sin,
    # data from u = sin(πx), so the PDE holds only for k = 2.
    import math

    holder = {}
    problem = kanpde.Problem(
        name="inverse",
        domain=kanpde.Interval(-1, 1),
        pde=lambda x, u: holder["m"].k * kanpde.d(u, x, "x", "x")
        + 2 * math.pi**2 * torch.sin(math.pi * x[:, 0:1]),
        conditions=[kanpde.Dirichlet(0.0),
                    kanpde.PointData(np.linspace(-0.9, 0.9, 9)[:, None],
                                     np.sin(math.pi * np.linspace(-0.9, 0.9, 9))[:, None])],
        exact=lambda x: torch.sin(math.pi * x[:, 0:1]),
        points={"interior": 100, "test": 101},
    )  # fmt: skip
    torch.manual_seed(0)
    model = _WithUnknown(kanpde.build_model(problem, {"width": [1, 5, 1], "grid": 5}))
    holder["m"] = model
    run = kanpde.solve(problem, model=model, schedule=[{"lbfgs": 200}], progress=False,
                       device="cpu", out=tmp_path)  # fmt: skip
    assert abs(model.k.item() - 2.0) < 0.05 and run.metrics["rel_l2"] < 0.02
    assert run.config["model"] == {"type": "custom", "class": f"{__name__}._WithUnknown"}
    loaded = kanpde.load(tmp_path)
    # the unknown's path is in the history (the KAN's own parameters are not)
    k = loaded.history["param_k"]
    assert k[0] == 0.5 and k[-1] == model.k.item() and len(k) == len(loaded.history["step"])
    assert [c for c in loaded.history if c.startswith("param_")] == ["param_k"]
    from kanpde.plot import _model_text  # figure titles name the class ("CUSTOM []" before)

    assert _model_text(loaded) == f"_WithUnknown, {loaded.config['parameters']} parameters"
    # the history figure draws the unknown's path (it drew loss and errors only)
    from kanpde import plot

    axes = {a.get_label(): a for a in plot.history(loaded).axes}
    assert list(axes) == ["loss", "error", "unknowns"] and axes["unknowns"].get_yscale() == "linear"
    (line,) = axes["unknowns"].get_lines()
    np.testing.assert_array_equal(line.get_ydata(), k)
    np.testing.assert_array_equal(line.get_xdata(), loaded.history["step"])
    assert line.get_label() == f"k = {k[-1]:.6g}" and abs(float(line.get_label()[4:]) - 2) < 0.05
    with pytest.raises(ValueError, match=r"module of the user's own .*run\.state_dict\(\)"):
        loaded.model()
    with pytest.raises(ValueError, match=r"predict: this run trained a module of your own"):
        loaded.predict([[0.5]])
    again = _WithUnknown(kanpde.build_model(problem, {"width": [1, 5, 1], "grid": 5}))
    again.load_state_dict(loaded.state_dict())
    assert again.k.item() == model.k.item()
    x = torch.linspace(-1, 1, 7, dtype=torch.float64)[:, None]
    torch.testing.assert_close(again(x), model(x), rtol=0, atol=0)


def test_relative_error_against_a_zero_reference_is_nan():
    from kanpde.losses import error_metrics

    ref = torch.zeros(5, 2, dtype=torch.float64)
    ref[:, 1] = 1.0
    pred = ref + 0.1
    m = error_metrics(pred, ref, ["u", "v"])
    assert np.isnan(m["rel_l2_u"])  # was 1e-1 / 1e-300: 1e299
    assert m["rel_l2_v"] == pytest.approx(0.1) and m["mse"] == pytest.approx(0.01)
    assert m["rel_l2"] == pytest.approx(float(torch.full((10,), 0.1).norm() / 5**0.5))


def test_a_run_of_the_users_own_module_resumes_with_the_module_given_again(tmp_path, monkeypatch):
    # Resuming rebuilt the model from the saved config, which a custom module cannot be.
    import math

    problem = kanpde.Problem(
        name="own", domain=kanpde.Interval(-1, 1),
        pde=lambda x, u: kanpde.d(u, x, "x", "x") + 2 * math.pi**2 * torch.sin(math.pi * x),
        conditions=[kanpde.Dirichlet(0.0)], exact=lambda x: torch.sin(math.pi * x),
        points={"interior": 40, "test": 21},
    )  # fmt: skip

    def fresh():
        torch.manual_seed(0)
        return _WithUnknown(kanpde.build_model(problem, {"width": [1, 3, 1], "grid": 5}))

    kw = dict(schedule=[{"adam": 30}], progress=False, device="cpu", log_every=10,
              checkpoint_every=10)  # fmt: skip
    full = kanpde.solve(problem, model=fresh(), out=tmp_path / "full", **kw)
    with monkeypatch.context() as m:
        kill_after_checkpoint(m, 20)
        with pytest.raises(Killed):
            kanpde.solve(problem, model=fresh(), out=tmp_path / "cut", **kw)
    with pytest.raises(ValueError, match=r"module of the user's own .*pass a fresh one as model="):
        kanpde.solve(problem, resume=tmp_path / "cut", progress=False)
    resumed = kanpde.solve(problem, resume=tmp_path / "cut", model=fresh(), progress=False)
    np.testing.assert_array_equal(resumed.history["step"], full.history["step"])
    np.testing.assert_allclose(resumed.history["loss"], full.history["loss"], rtol=1e-12)
    assert resumed.state["k"] == full.state["k"]


def test_signals_held_hold_a_process_signal_until_the_block_ends():
    # A signal sent to the process reaches any thread that does not block it (torch's, tqdm's),
    # so a signal mask let Ctrl-C through between a study's csv and h5 writes.
    import signal
    import threading
    import time

    from kanpde.signals import signals_held

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    done = []
    try:
        with pytest.raises(KeyboardInterrupt):
            with signals_held():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.2)
                done.append("block")
        assert done == ["block"]  # the whole block ran, then the interrupt came
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        stop.set()
        other.join()
        signal.signal(signal.SIGINT, previous)


# ----------------------------------------------------------- mutation-testing additions


def test_result_file_records_the_reference_kind_final_loss_and_group_attributes(solved):
    # catches: "exact"/"reference" swapped, metrics["loss"] from another column, and the
    # solution's names/outputs or the model's config attributes left out of the file
    import json

    _, out = solved
    r = load(out)
    assert r.attrs["reference"] == "exact"  # poisson2d has a closed form
    assert r.metrics["loss"] == r.history["loss"][-1]
    with h5py.File(out / "result.h5") as f:
        assert json.loads(f["solution"].attrs["names"]) == ["x", "y"]
        assert json.loads(f["solution"].attrs["outputs"]) == ["u"]
        assert json.loads(f["model"].attrs["config"]) == r.config["model"]


def test_a_run_without_a_reference_stores_its_prediction_on_the_domain_grid():
    # catches: a wrong EVAL_GRID (201 nodes in 1-D, 31 per axis in 3-D)
    for domain, n in ((kanpde.Interval(-1, 1), 201), (kanpde.Box([0, 0, 0], [1, 1, 1]), 31)):
        problem = kanpde.Problem(
            name="noref", domain=domain, pde=lambda x, u: kanpde.laplacian(u, x) + 1.0,
            conditions=[kanpde.Dirichlet(0.0)], points={"interior": 20, "boundary": 10},
        )  # fmt: skip
        run = kanpde.solve(problem, schedule="adam=1", progress=False, device="cpu")
        assert sorted(run.solution) == ["pred", "x"]
        x = run.solution["x"]
        assert x.shape == (n**domain.dim, domain.dim)
        for axis in range(domain.dim):
            np.testing.assert_allclose(np.unique(x[:, axis]), np.linspace(*x[[0, -1], axis], n))
        assert run.solution["pred"].shape == (n**domain.dim, 1)


def test_predict_on_a_1d_domain_takes_a_flat_array_as_points():
    # np.linspace(0, 1, n) is how a 1-D user samples; it was refused as no (N, 1) array
    problem = kanpde.load_problem(ROOT / "problems" / "poisson1d.py")
    run = kanpde.solve(problem, schedule="4:lbfgs=3", points={"interior": 20, "test": 11},
                       progress=False, device="cpu")  # fmt: skip
    x = np.linspace(-1, 1, 7)
    column = run.predict(x[:, None])
    assert column.shape == (7, 1)
    assert np.array_equal(run.predict(x), column)
    assert np.array_equal(run.predict(x[:1]), column[:1])  # one point too is (1, 1)
    assert run.predict(0.5).shape == (1,)  # a number is one point
    assert run.predict(np.float64(0.5))[0] == run.predict([[0.5]])[0, 0]


def test_a_file_that_is_not_hdf5_is_named_as_such(tmp_path):
    # `kanpde plot notes.txt` reported h5py's "file signature not found"
    from kanpde.checkpoint import load_checkpoint

    (tmp_path / "notes.txt").write_text("a note\n")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "result.h5").write_bytes(b"")  # a write cut short at its start
    (tmp_path / "run" / "checkpoint.h5").write_text("not a checkpoint")
    for path in (tmp_path / "notes.txt", tmp_path / "run"):
        with pytest.raises(ResultsError, match=r": not an HDF5 file \(empty, cut short or of"):
            load(path)
    with pytest.raises(ResultsError, match=r"checkpoint.h5: not an HDF5 file \(empty, cut"):
        load_checkpoint(tmp_path / "run")


def test_a_missing_path_names_the_entry_it_is_probably_a_typo_of(tmp_path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "poisson2d.py").write_text("")
    cases = [
        (load, tmp_path / "runz", f"results file not found; did you mean {tmp_path / 'runs'}?"),
        (load, tmp_path / "elsewhere", "elsewhere: results file not found"),
        (kanpde.load_problem, tmp_path / "poison2d.py",
         f"problem file not found; did you mean {tmp_path / 'poisson2d.py'}?"),
        (kanpde.load_problem, tmp_path / "poisson2d",
         f"problem file not found; did you mean {tmp_path / 'poisson2d.py'}?"),
        (kanpde.load_problem, tmp_path / "heat.py", "heat.py: problem file not found"),
        (kanpde.load_problem, tmp_path / "no" / "dir.py", "dir.py: problem file not found"),
    ]  # fmt: skip
    for loader, path, message in cases:
        with pytest.raises(ValueError) as e:
            loader(path)
        assert str(e.value).endswith(message), str(e.value)


def test_a_run_records_the_points_each_term_drew(tmp_path):
    # config["points"] holds the counts asked for: a grid on the L-shape draws 616 interior
    # points for 600, and a steady domain draws none of the default 400 initial points
    problem = str(Path(__file__).resolve().parents[1] / "problems" / "poisson_lshape.py")
    run = kanpde.solve(problem, schedule="5:lbfgs=1", progress=False, device="cpu",
                       points={"interior": 600, "boundary": 100, "method": "grid", "test": 11},
                       out=tmp_path / "run")  # fmt: skip
    assert run.config["points"]["interior"] == 600
    expected = {"pde": 616, "dirichlet": 100}
    assert run.attrs["points_drawn"] == expected
    assert kanpde.load(tmp_path / "run").attrs["points_drawn"] == expected
    assert "points_drawn_of" not in run.attrs  # one process

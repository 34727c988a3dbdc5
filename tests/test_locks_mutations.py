"""Run-directory locks, shared failures and result-file checks (mutation audit).

Each test pins a behaviour of the run-directory lock (``kanpde/training.py``), of
``kanpde/distributed.py``'s ``shared_failure``/``leave``, of ``kanpde/results.py``'s atomic
writes and ``load()`` checks, or of a study's stopped/non-finite marks (``kanpde/compare.py``)
that a plausible one-line change left the rest of the suite passing. A lock is probed as a
second process would: ``flock`` on another open file description of the directory, which
conflicts with the holder's even inside one process.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest

import kanpde
from kanpde import checkpoint, distributed, training
from kanpde.compare import Comparison, _row
from kanpde.results import ResultsError, Run, load, save_run, write_atomic, write_h5_atomic

fcntl = pytest.importorskip("fcntl")

ROOT = Path(__file__).resolve().parents[1]
POISSON1D = str(ROOT / "problems" / "poisson1d.py")


def _locked(directory: Path) -> bool:
    """Whether another open file description holds ``directory``'s flock (a second process's
    view: its own open and a non-blocking exclusive lock)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also releases the probe's own lock
    return False


@contextlib.contextmanager
def _inside_solve():
    """What solve() sets up around its body: a stack for _hold_run_directory to hold into."""
    with contextlib.ExitStack() as held:
        token = training._HELD.set(held)
        try:
            yield held
        finally:
            training._HELD.reset(token)


# ------------------------------------------------------------------------ the run-directory lock


def test_a_made_directory_is_removed_while_the_lock_is_still_held(tmp_path, monkeypatch):
    # Removed after the lock's release, a second process could take the directory in between
    # and lose it (the run's checks fail, its empty directory is removed under the other).
    seen = []
    original = training._remove_if_empty

    def remove(directories):
        out = tmp_path / "a" / "b"
        seen.append((list(directories), out.is_dir() and _locked(out)))
        original(directories)

    monkeypatch.setattr(training, "_remove_if_empty", remove)
    with pytest.raises(ValueError, match="interior"):
        kanpde.solve(POISSON1D, out=tmp_path / "a" / "b", points={"interior": 0}, progress=False)
    # the made directories, deepest first, still locked when their removal began
    assert seen == [([tmp_path / "a" / "b", tmp_path / "a"], True)]
    assert os.listdir(tmp_path) == []


def test_a_resume_of_a_missing_directory_makes_none_and_warns_of_no_lock(tmp_path, monkeypatch):
    # Only a new run's directory is made: a resume's is the run's, which must be there. Nor
    # is a missing directory "not locked against a second process": its checkpoint is missing.
    missing = tmp_path / "run"
    existed = []
    original = checkpoint.load_checkpoint

    def load_checkpoint(path):
        existed.append(Path(path).exists())
        return original(path)

    monkeypatch.setattr(checkpoint, "load_checkpoint", load_checkpoint)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ResultsError, match=r"run: no checkpoint to resume from$"):
            kanpde.solve(POISSON1D, resume=missing, progress=False)
    assert existed == [False] and os.listdir(tmp_path) == []


def test_the_lock_is_held_for_the_call_and_released_at_its_end(tmp_path):
    # The lock is an exclusive flock: a shared one lets a second process in; a file
    # descriptor kept open keeps it after the call.
    for out in (tmp_path / "new", tmp_path / "old"):
        if out.name == "old":
            out.mkdir()
        with _inside_solve():
            training._hold_run_directory(out, resuming=out.name == "old")
            assert out.is_dir() and _locked(out)
            with pytest.raises(ValueError) as e:
                with _inside_solve():  # a second holder, as a second process would be
                    training._hold_run_directory(out, resuming=out.name == "old")
        assert str(e.value) == f"{out}: another process is training " + (
            "this run" if out.name == "old" else "a run in this directory"
        )
    assert not (tmp_path / "new").exists()  # made for the call and left empty: removed
    assert not _locked(tmp_path / "old")  # released at the call's end


def test_outside_solve_nothing_is_locked_or_made(tmp_path):
    # _HELD is solve()'s: after a call returns it is reset, so a directory is never held
    # past the call that took it (nor made by a stray call).
    with pytest.raises(ValueError, match="interior"):  # a call that fails: its lock ends too
        kanpde.solve(POISSON1D, out=tmp_path / "done", points={"interior": 0}, progress=False)
    (tmp_path / "done").mkdir()
    assert training._HELD.get() is None
    training._hold_run_directory(tmp_path / "x", resuming=False)
    assert not (tmp_path / "x").exists()
    assert not _locked(tmp_path / "done")


def test_another_rank_neither_makes_nor_locks_the_directory(tmp_path, monkeypatch):
    # Under torchrun rank 0 makes and holds the directory for every rank; another rank that
    # locked it too would be refused by rank 0's own lock, and made it racing rank 0.
    out, held = tmp_path / "run", tmp_path / "held"
    held.mkdir()
    fd = os.open(held, os.O_RDONLY)  # another process trains there
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    answers = []
    monkeypatch.setattr(distributed, "rank", lambda: 1)
    monkeypatch.setattr(distributed, "shared_failure", lambda m: answers.append(m))  # rank 0: ok
    try:
        with _inside_solve():
            training._hold_run_directory(out, resuming=False)
            training._hold_run_directory(held, resuming=True)  # rank 0 took it: no error
            assert not out.exists()
    finally:
        os.close(fd)
    assert answers == [None, None]  # nothing of its own to report, and it asked rank 0
    # rank 0's refusal is this rank's error too
    refusal = f"{held}: another process is training this run"
    monkeypatch.setattr(distributed, "shared_failure", lambda m: refusal)
    with _inside_solve(), pytest.raises(ValueError) as e:
        training._hold_run_directory(held, resuming=True)
    assert str(e.value) == refusal


def test_an_unexpected_lock_error_is_shared_and_names_the_directory(tmp_path, monkeypatch):
    # Every rank must hear of any error of rank 0's lock, or the others wait in the broadcast;
    # the message names the directory (a bare "KanpdeWarning: ..." or a traceback did not).
    shared = []
    monkeypatch.setattr(distributed, "shared_failure", lambda m: shared.append(m) or m)

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    out = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a user's -W error: the warning is an exception
        with pytest.raises(ValueError) as e:
            kanpde.solve(POISSON1D, schedule="5:adam=1", out=out, progress=False)
    # the path once (the warning's text already names it), and the directory the call made
    # for the run is taken back as after any other error before training
    message = (
        f"KanpdeWarning: {out}: not locked against a second process "
        f"(OSError: [Errno {errno.ENOLCK}] No locks available)"
    )
    assert str(e.value) == message and shared == [message]
    assert not out.exists() and tmp_path.exists()


def test_a_run_directory_that_cannot_be_made_leaves_no_parents_behind(tmp_path):
    # mkdir(parents=True) makes the parents, then fails on a name too long for the file
    # system: the parents it made are the call's to remove, and the error names the path once
    out = tmp_path / "new" / ("x" * 300)
    with pytest.raises(ValueError) as e:
        kanpde.solve(POISSON1D, schedule="5:adam=1", out=out, progress=False)
    assert str(e.value).count(str(out)) == 1 and "\n" not in str(e.value)
    assert not (tmp_path / "new").exists()


def test_a_second_process_is_refused_the_directory_until_the_call_ends(tmp_path):
    # a real second process: flock is per open file, held until the run's solve() returns
    probe = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDONLY)\n"
        "try:\n"
        "    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "    print('free')\n"
        "except BlockingIOError:\n"
        "    print('held')\n"
    )

    def second():
        r = subprocess.run([sys.executable, "-c", probe, str(out)], capture_output=True,
                           text=True, timeout=60)  # fmt: skip
        return r.stdout.strip()

    out = tmp_path / "run"
    out.mkdir()
    with _inside_solve():
        training._hold_run_directory(out, resuming=True)
        during = second()
    assert (during, second()) == ("held", "free")


# ------------------------------------------------------------------------ distributed helpers


def test_shared_failure_waits_for_every_rank_only_on_an_error(monkeypatch):
    # the error is broadcast, then a barrier keeps every rank until all have read it; no
    # error, no barrier (a barrier on one side only would hang the others)
    calls = []
    monkeypatch.setattr(distributed, "broadcast", lambda obj: calls.append(("bcast", obj)) or obj)
    monkeypatch.setattr(distributed, "barrier", lambda: calls.append(("barrier",)))
    assert distributed.shared_failure(None) is None
    assert calls == [("bcast", None)]
    calls.clear()
    assert distributed.shared_failure("x: refused") == "x: refused"
    assert calls == [("bcast", "x: refused"), ("barrier",)]


def test_leave_destroys_the_process_group_only_when_in_one(monkeypatch):
    calls = []
    monkeypatch.setattr(distributed.dist, "destroy_process_group", lambda: calls.append(1))
    monkeypatch.setattr(distributed, "active", lambda: False)
    distributed.leave()
    assert calls == []
    monkeypatch.setattr(distributed, "active", lambda: True)
    distributed.leave()
    assert calls == [1]


# ------------------------------------------------------------------------ results files


def test_an_atomic_write_syncs_the_file_before_the_rename_and_the_directory_after(
    tmp_path, monkeypatch
):
    # never a half-written file after a crash: the data reaches the disk before the new name
    # does, and the rename itself is made durable
    order = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        order.append(("fsync", Path(os.readlink(f"/proc/self/fd/{fd}")).name))
        real_fsync(fd)

    def replace(src, dst):
        order.append(("replace", Path(dst).name))
        real_replace(src, dst)

    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to name file descriptors")
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    write_h5_atomic(tmp_path / "f.h5", lambda f: f.create_dataset("a", data=np.arange(3.0)))
    assert len(order) == 3
    (kind, tmp), rename, folder = order
    assert kind == "fsync" and tmp.startswith(".f.h5.") and tmp.endswith(".tmp")
    assert rename == ("replace", "f.h5") and folder == ("fsync", tmp_path.name)
    with h5py.File(tmp_path / "f.h5", "r") as f:
        assert f["a"][()].tolist() == [0.0, 1.0, 2.0]


def test_write_h5_atomic_writes_the_whole_file_or_nothing(tmp_path):
    # the in-memory file is complete (closed) before its bytes are written, and a refused
    # write leaves the old file as it was
    path = tmp_path / "f.h5"
    write_h5_atomic(path, lambda f: f.create_dataset("a", data=np.arange(1000.0)))
    with h5py.File(path, "r") as f:
        assert np.array_equal(f["a"][()], np.arange(1000.0))
    before = path.read_bytes()

    def failing(f):
        f.create_dataset("b", data=np.zeros(3))
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises((OSError, ResultsError), match="No space left"):
        write_h5_atomic(path, failing)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["f.h5"]


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("metrics", "[1, 2]", "its metrics is of type list, not dict"),
        ("metrics", '"mse"', "its metrics is of type str, not dict"),
        ("events", '[{"event": "nonfinite"}, 3]', "its event is of type int, not dict"),
        (
            "events",
            '[{"event": "a"}, {"event": "b"}, ["c"]]',
            "its event is of type list, not dict",
        ),
    ],
)
def test_load_checks_metrics_and_every_event(tmp_path, key, value, message):
    run = Run(config={"problem": "p"}, metrics={"mse": 0.5}, history={}, solution={}, state={},
              events=[{"event": "x"}])  # fmt: skip
    path = save_run(run, tmp_path)
    with h5py.File(path, "a") as f:
        f.attrs[key] = value
    with pytest.raises(ResultsError) as e:
        load(tmp_path)
    assert str(e.value) == f"{path}: corrupt results file ({message})"


def test_write_atomic_removes_its_temporary_file_when_the_write_fails(tmp_path):
    def failing(tmp):
        Path(tmp).write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(ResultsError):
        write_atomic(tmp_path / "x.h5", failing)
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------ a study's marks


def _fake_run(events):
    m = {"parameters": 10, "mse": 1.0, "rel_l2": 1.0, "max_err": 1.0, "train_time": 1.0,
         "steps": 4, "evals": 4, "loss": 1.0}  # fmt: skip
    return SimpleNamespace(metrics=m, history={"grid": np.asarray([5.0])}, events=events)


def test_a_rows_marks_count_non_finite_events_and_only_non_finite_stops():
    # three roll-backs are 3 (not "any"); an out-of-memory stop is no non-finite stop
    nan = {"event": "nonfinite", "action": "rolled back"}
    row = _row("kan", [1, 3, 1], 0, _fake_run([nan, nan, {"event": "grid"}, nan]))
    assert (row["nonfinite"], row["stopped"]) == (3, 0)
    oom = {"event": "stopped", "why": "CUDA out of memory", "nonfinite": False}
    assert _row("kan", [1, 3, 1], 0, _fake_run([oom]))["stopped"] == 0
    diverged = {"event": "stopped", "why": "5 non-finite", "nonfinite": True}
    assert _row("kan", [1, 3, 1], 0, _fake_run([nan, diverged]))["stopped"] == 1


def _summary_row(seed, **marks):
    return {
        "model": "KAN [1,3,1]",
        "params": 10,
        "seed": seed,
        "mse": 1.0,
        "rel_l2": 1.0,
        "max_err": 1.0,
        "train_time": 1.0,
        "steps_per_s": 1.0,
        "loss": 1.0,
        **marks,
    }


def test_an_older_studys_rows_without_marks_count_as_regular():
    # rows of a study written before the columns: the key missing, or blank in a CSV
    rows = [
        _summary_row(0),
        _summary_row(1, nonfinite="", stopped=""),
        _summary_row(2, nonfinite=2, stopped=0),
        _summary_row(3, nonfinite=1, stopped=1),
    ]
    (entry,) = Comparison("p", rows, {}).summary()
    assert (entry["seeds"], entry["stopped"], entry["recovered"]) == (4, 1, 1)
    table = Comparison("p", rows, {}).markdown()
    assert table.endswith(
        "\nKAN [1,3,1]: 1 of 4 runs stopped on repeated non-finite losses before their budget "
        "(their errors are those of the last good state)\n"
        "\nKAN [1,3,1]: 1 of 4 runs recovered from non-finite losses by rolling back (an L-BFGS "
        "stage may have gone on with Adam; see each run's events)\n"
    )


def test_recovered_runs_are_noted_without_stopped_ones():
    rows = [_summary_row(0, nonfinite=0, stopped=0), _summary_row(1, nonfinite=3, stopped=0)]
    table = Comparison("p", rows, {}).markdown()
    assert table.endswith(
        " |\n\nKAN [1,3,1]: 1 of 2 runs recovered from non-finite losses by rolling back (an "
        "L-BFGS stage may have gone on with Adam; see each run's events)\n"
    )
    assert "stopped on" not in table


def test_a_table_of_three_models_with_three_run_counts_says_so():
    rows = [
        {**_summary_row(s), "model": m} for m, n in (("A", 1), ("B", 2), ("C", 3)) for s in range(n)
    ]
    table = Comparison("p", rows, {}).markdown()
    assert table.endswith(" |\n\nruns per model differ: A 1, B 2, C 3\n")

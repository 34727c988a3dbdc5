"""Data-parallel training: 2 processes (torchrun) match one process on the same points.

CPU ranks use gloo (the CI case). ``KANPDE_DIST_DEVICE=cuda`` runs the same test with NCCL, one
GPU per rank, on a machine with at least two GPUs.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist

ROOT = Path(__file__).resolve().parents[1]
DEVICE = os.environ.get("KANPDE_DIST_DEVICE", "cpu")

SCRIPT = """
import json, sys, torch
import kanpde
from kanpde import distributed

schedule, out = sys.argv[1], sys.argv[2]
extra = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {{}}
run = kanpde.solve("{problem}", schedule=schedule, device="{device}", progress=False, log_every=5,
                   points={{"interior": 301, "boundary": 81, "method": "sobol", "test": 21}},
                   checkpoint_every=0, **extra)
params = torch.cat([p.detach().reshape(-1) for p in run.model().parameters()])
json.dump({{"rank": distributed.rank(), "world": distributed.world(),
           "loss": run.history["loss"].tolist(), "mse": run.metrics["mse"],
           "params": params.tolist(), "steps": run.metrics["steps"],
           "grid": int(run.history["grid"][-1]), "drawn": run.attrs["points_drawn"]}},
          open(f"{{out}}-{{distributed.rank()}}.json", "w"))
"""


def launch(tmp_path, schedule, nproc, extra=None):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT.format(problem=ROOT / "problems" / "poisson2d.py", device=DEVICE))
    out = tmp_path / f"n{nproc}"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if nproc == 1:
        cmd = [sys.executable, str(script), schedule, str(out), json.dumps(extra or {})]
    else:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            str(nproc),
            "--master-port",
            str(29500 + os.getpid() % 1000),
            str(script),
            schedule,
            str(out),
            json.dumps(extra or {}),
        ]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return [json.loads(Path(f"{out}-{k}.json").read_text()) for k in range(nproc)]


# the sparsity penalty is of the whole model: each rank added it in full (world times)
SCHEDULES = ["3:adam=25@1e-2", "3:lbfgs=15", "3:adam=10@1e-2,6:lbfgs=10",
             "3:adam=10@1e-2+sparsity=0.01"]  # fmt: skip


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not built")
@pytest.mark.skipif(
    DEVICE.startswith("cuda") and torch.cuda.device_count() < 2, reason="NCCL needs 2 GPUs"
)
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_two_ranks_match_one_process(tmp_path, schedule):
    (single,) = launch(tmp_path, schedule, 1)
    r0, r1 = launch(tmp_path, schedule, 2)
    assert (r0["world"], r1["world"], single["world"]) == (2, 2, 1)
    # Every rank takes identical steps: the parameters agree to the last bit.
    np.testing.assert_array_equal(r0["params"], r1["params"])
    # The sharded sums equal the single-process means up to rounding.
    np.testing.assert_allclose(r0["loss"], single["loss"], rtol=1e-6)
    np.testing.assert_allclose(r0["params"], single["params"], rtol=1e-6, atol=1e-9)
    assert r0["mse"] == pytest.approx(single["mse"], rel=1e-6)
    # the run's points, as one process draws them (rank 0 recorded its shard alone)
    assert r0["drawn"] == r1["drawn"] == single["drawn"] == {"pde": 301, "dirichlet": 81}


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not built")
@pytest.mark.skipif(
    DEVICE.startswith("cuda") and torch.cuda.device_count() < 2, reason="NCCL needs 2 GPUs"
)
def test_two_ranks_share_one_clock_under_a_time_budget(tmp_path):
    # Each rank stopped on its own clock, so one left the collectives of the other (gloo
    # aborted), and a timed Adam decay gave the ranks different learning rates.
    schedule = "3:adam=100000@1e-2,6:lbfgs=100000"
    extra = {"max_seconds": 1.5, "time_shares": [1, 1]}
    r0, r1 = launch(tmp_path, schedule, 2, extra)
    assert r0["steps"] == r1["steps"] > 2 and r0["grid"] == r1["grid"] == 6
    np.testing.assert_array_equal(r0["params"], r1["params"])


HELD = """
import json, sys
import torch
import kanpde
from kanpde import distributed

try:
    kanpde.solve("{problem}", schedule="3:adam=2", device="cpu", progress=False, out=sys.argv[1],
                 points={{"interior": 30, "boundary": 10, "test": 5}})
    message = None
except ValueError as e:
    message = str(e)
json.dump(message, open(sys.argv[1] + f"-{{distributed.rank()}}.json", "w"))
torch.distributed.destroy_process_group()  # as a torchrun script ends
"""


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not built")
def test_every_rank_is_refused_a_directory_another_process_trains_in(tmp_path):
    # torchrun's ranks took no lock: a torchrun resume of a run another process was
    # resuming trained it twice; rank 0 now holds the lock and every rank gets its answer
    import fcntl

    script, out = tmp_path / "held.py", tmp_path / "run"
    script.write_text(HELD.format(problem=ROOT / "problems" / "poisson1d.py"))
    out.mkdir()
    fd = os.open(out, os.O_RDONLY)  # as a process training there holds it
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
               "--master-port", str(29700 + os.getpid() % 1000), str(script), str(out)]  # fmt: skip
        env = dict(os.environ, OMP_NUM_THREADS="1")
        r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    finally:
        os.close(fd)
    assert r.returncode == 0, r.stderr[-3000:]
    refusal = f"{out}: another process is training a run in this directory"
    assert [json.loads(Path(f"{out}-{k}.json").read_text()) for k in (0, 1)] == [refusal] * 2
    assert os.listdir(out) == []


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not built")
def test_every_rank_reports_a_bad_out_in_one_line(tmp_path):
    # rank 0 found it before sharing the run directory and stopped; rank 1, left waiting in
    # the broadcast, died with a traceback ("Connection closed by peer")
    bad = tmp_path / "a file"
    bad.write_text("")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
           "--master-port", str(29800 + os.getpid() % 1000), "-m", "kanpde", "solve",
           str(ROOT / "problems" / "poisson1d.py"), "--out", str(bad), "--quiet"]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    line = f"kanpde: error: --out {bad}: cannot create a run directory (Not a directory)"
    assert r.stderr.count(line) == 2, r.stderr[-3000:]  # the ranks may write into one line
    assert "[rank" not in r.stderr  # no rank's traceback (torchrun's own report follows)


def test_gpu_ranks_take_their_local_gpu_or_are_refused_in_one_line(monkeypatch):
    # an index given was replaced by the local rank unseen; a rank beyond the machine's GPUs
    # died inside torch.cuda.set_device with a traceback on every rank
    from kanpde import distributed

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(dist, "init_process_group", lambda **kw: pytest.fail("joined"))
    with pytest.raises(ValueError, match=r"^device 'cudax': "):  # torch's own, in one line
        distributed.setup("cudax")
    with pytest.raises(ValueError) as e:
        distributed.setup("cuda:1")
    assert str(e.value) == (
        "--device cuda:1: under torchrun each rank takes the GPU of its local rank; give "
        "--device cuda (or auto), and CUDA_VISIBLE_DEVICES to choose the GPUs"
    )
    with pytest.raises(ValueError) as e:
        distributed.setup("cuda")
    assert str(e.value) == (
        "--device cuda: torchrun started local rank 1 on a machine with 1 GPU(s); give "
        "--nproc-per-node 1 or fewer, or --device cpu"
    )
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(ValueError) as e:
        distributed.setup("cuda")
    assert str(e.value) == "--device cuda: no CUDA GPU is available to this process"


@pytest.mark.parametrize("command", ["compare", "sweep", "list"])
def test_other_commands_are_refused_under_torchrun(command, monkeypatch, tmp_path, capsys):
    # every rank ran the whole study into a directory of its own (one without its runs)
    import kanpde.compare
    from kanpde.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    for study in ("compare", "sweep"):  # refused before any of them starts
        monkeypatch.setattr(kanpde.compare, study, lambda *a, **k: pytest.fail("started"))
    argv = [command, str(ROOT / "problems" / "poisson1d.py")]
    argv += ["--out", str(tmp_path)] if command != "list" else []
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"kanpde: error: kanpde {command}: under torchrun only kanpde solve runs "
        "(data-parallel); run this command without torchrun\n"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("study", ["compare", "sweep"])
def test_studies_from_python_are_refused_under_torchrun(study, monkeypatch, tmp_path):
    # sweep's ranks each took the study's lock: rank 1 was told "another process is running"
    import kanpde.compare
    from kanpde.cli import CLIError

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(CLIError) as e:
        getattr(kanpde.compare, study)(str(ROOT / "problems" / "poisson1d.py"), out=tmp_path)
    assert str(e.value) == (
        f"{study}: a study runs in one process; under torchrun only solve trains data-parallel "
        "(start the study without torchrun)"
    )
    assert list(tmp_path.iterdir()) == []


def test_only_the_first_rank_warns(monkeypatch):
    # every rank printed the same setup warnings
    import warnings

    from kanpde.problem import KanpdeWarning, warn

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("RANK", "1")  # set by a launcher of one process: its warnings stay
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warn("the schedule has no optimizer steps")
    assert len(caught) == 1
    monkeypatch.setenv("WORLD_SIZE", "2")
    for rank, expected in (("1", 0), ("0", 1)):
        monkeypatch.setenv("RANK", rank)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warn("the schedule has no optimizer steps")
        assert [w.category for w in caught] == [KanpdeWarning] * expected

"""Quick GPU check: CUDA-graph replay against eager and plain autograd, and step throughput.

    PYTHONPATH=. python benchmarks/gpu_smoke.py
    PYTHONPATH=. python benchmarks/gpu_smoke.py --device cpu --big 20000   # a dry run

For each row (Poisson-2D, float64): the loss and parameter gradients of kanpde's step (its jets;
replayed as a CUDA graph on a GPU) against nested autograd of the problem's residual (the
1e-10 requirement), and eager, graph and graph+Adam steps per second. Before them: the
trainer's own Adam rate, and its deferred finiteness checks across a grid extension and with
NaN losses. A row that fails records its error and the others still run; the exit status is 1
if any row failed or missed its tolerance.
Results: ``benchmarks/results/gpu_smoke_<gpu>.json`` (e.g. ``gpu_smoke_h100.json``; ``_cpu``
for a dry run), also copied to ``$OUT`` when that is set.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import apply_allocator, error_text, machine, save, sync  # noqa: E402

import kanpde  # noqa: E402
from kanpde.losses import Residuals  # noqa: E402
from kanpde.training import _CapturedGradient, _dense_grads, build_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PROBLEM = kanpde.load_problem(ROOT / "problems" / "poisson2d.py")
TOL = 1e-10


def rate(fn, device: str, seconds: float = 1.5) -> float:
    for _ in range(5):
        fn()
    sync(device)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(10):
            fn()
        n += 10
        sync(device)
    return n / (time.perf_counter() - t0)


def plain_loss(model, residuals: Residuals) -> torch.Tensor:
    """poisson2d's loss, ``0.01·mean(r²) + mean(u_b²)``, by nested autograd of the model."""
    x = residuals.pde.points.x.detach().clone().requires_grad_(True)
    u = model(x)
    (g,) = torch.autograd.grad(u.sum(), x, create_graph=True)
    lap = sum(torch.autograd.grad(g[:, a].sum(), x, create_graph=True)[0][:, a : a + 1]
              for a in range(2))  # fmt: skip
    r = lap + 2 * math.pi**2 * torch.sin(math.pi * x[:, :1]) * torch.sin(math.pi * x[:, 1:])
    ub = model(residuals.terms[0].points.x)
    return PROBLEM.weights["pde"] * (r**2).mean() + (ub**2).mean()


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    if b.numel() == 0:  # the empty spline parameters of an all-symbolic layer
        return 0.0
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


def measure(kind: str, cfg: dict, n_int: int, device: str, model=None) -> dict:
    row = {"model": kind, "cfg": cfg, "N": n_int}
    torch.manual_seed(0)
    m = build_model(PROBLEM, cfg, torch.float64, device) if model is None else model
    pts = dict(PROBLEM.points, interior=n_int, method="sobol")
    residuals = Residuals(PROBLEM, m, pts, PROBLEM.weights, torch.float64, device)
    params = list(m.parameters())

    def eager():
        for q in params:
            q.grad = None
        loss, _ = residuals()
        loss.backward(inputs=params)
        _dense_grads(params)  # zeros for parameters the loss does not reach, as the trainer
        return loss

    loss = eager().detach()
    g_eager = [q.grad.clone() for q in params]
    if n_int <= 100_000:  # nested autograd of 10^6 points is not the point of this check
        ref = plain_loss(m, residuals)
        g_ref = torch.autograd.grad(ref, params, allow_unused=True, materialize_grads=True)
        ref = ref.detach()
        row["plain_loss_rel_err"] = abs(float(loss - ref)) / abs(float(ref))
        row["plain_grad_rel_err"] = max(rel(a, b) for a, b in zip(g_eager, g_ref))
    row["eager_per_s"] = rate(eager, device)
    if device.startswith("cuda"):
        cap = _CapturedGradient(residuals, params)
        cap.replay()
        row["graph_grad_rel_err"] = max(rel(q.grad, g) for q, g in zip(params, g_eager))
        row["graph_per_s"] = rate(cap.replay, device)
        adam = torch.optim.Adam(params, lr=1e-3, fused=True)

        def adam_step():
            cap.replay()
            adam.step()

        row["graph_adam_steps_per_s"] = rate(adam_step, device)
        row["max_mem_gb"] = torch.cuda.max_memory_allocated(torch.device(device)) / 2**30
    return row


def trainer_adam(n_int: int, device: str, steps: int) -> dict:
    """Adam steps per second of kanpde's own trainer (``solve``), which also checks every
    loss for finiteness (on a GPU without waiting for it: read at the logs) and does its
    bookkeeping: the rate a user gets."""
    pts = dict(PROBLEM.points, interior=n_int, method="sobol", test=11)
    run = kanpde.solve(PROBLEM, schedule=[{"grid": 10, "adam": steps}], points=pts,
                       device=device, dtype="float64", progress=False, log_every=steps)  # fmt: skip
    train = run.metrics["train_time"]
    return {"model": "kan", "cfg": {"grid": 10}, "N": n_int, "trainer_adam_steps": steps,
            "trainer_train_time_s": train, "trainer_adam_steps_per_s": steps / train}  # fmt: skip


def edited_model(device: str):
    """A [2, 5, 1] KAN whose last layer is all symbolic: its spline parameters are empty and
    get no gradient, which the captured step once failed on. Built on the CPU, then moved, so
    that every device starts from the same model."""
    import copy

    from kanpde.symbolic import fix_symbolic

    torch.manual_seed(0)
    model = build_model(PROBLEM, {"width": [2, 5, 1], "grid": 5}, torch.float64, "cpu")
    x = torch.rand(400, 2, dtype=torch.float64) * 2 - 1
    fix_symbolic(model, 0, 0, 0, "sin", x=x)
    for i in range(5):
        fix_symbolic(model, 1, i, 0, "x")
    return copy.deepcopy(model).to(device)


def edited_solve(device: str) -> dict:
    """A short solve of :func:`edited_model` (graphs on a GPU) against the same on the CPU."""
    histories = {}
    for dev in dict.fromkeys([device, "cpu"]):
        pts = {"interior": 400, "boundary": 80, "method": "grid", "test": 11}
        run = kanpde.solve(PROBLEM, model=edited_model(dev), schedule=[{"lbfgs": 20}],
                           points=pts, device=dev, progress=False, log_every=5)  # fmt: skip
        histories[dev] = run.history["loss"]
    a, b = histories[device], histories["cpu"]
    rel = float(max(abs(p - q) / abs(q) for p, q in zip(a, b)))
    return {"model": "kan, last layer symbolic: solve", "N": 400, "lbfgs_steps": 20,
            "losses": [float(v) for v in a], "losses_cpu": [float(v) for v in b],
            "loss_vs_cpu_rel": rel}  # fmt: skip


def deferred_checks(device: str) -> dict:
    """The trainer's Adam on a GPU checks finiteness without waiting (fused Adam skips a
    flagged step; the flags are read at the logs). Two short solves exercise it: one across a
    grid extension (fused Adam needs the new coefficients and carried moments laid out as
    their gradients) against the same on the CPU, and one that keeps producing NaN losses
    (sqrt(1 - u) once u > 1 at learning rate 0.5), which must roll back and finish finite."""
    import math as m

    from kanpde import Dirichlet, Interval, Problem, d

    losses = {}
    for dev in dict.fromkeys([device, "cpu"]):
        torch.manual_seed(0)
        pts = {"interior": 400, "boundary": 80, "method": "grid", "test": 11}
        schedule = [{"grid": 3, "adam": 20, "lr": 1e-2}, {"grid": 6, "adam": 20, "lr": 1e-2}]
        run = kanpde.solve(PROBLEM, schedule=schedule, points=pts, device=dev,
                           dtype="float64", progress=False, log_every=10)  # fmt: skip
        losses[dev] = run.history["loss"]
    a, b = losses[device], losses["cpu"]
    rel = float(max(abs(p - q) / abs(q) for p, q in zip(a, b)))
    nan_prone = Problem(
        name="nan_prone",
        domain=Interval(-1, 1),
        pde=lambda x, u: d(u, x, "x", "x") + 10 * torch.sqrt(1 - u),
        conditions=[Dirichlet(0.0)],
        exact=lambda x: torch.sin(m.pi * x),
    )
    torch.manual_seed(0)
    run = kanpde.solve(nan_prone, schedule="adam=200@0.5", device=device, dtype="float64",
                       points={"interior": 60, "boundary": 2, "test": 21},
                       progress=False, log_every=5)  # fmt: skip
    actions = [e["action"] for e in run.events if e["event"] == "nonfinite"]
    final = float(run.history["loss"][-1])
    return {"model": "kan: trainer's deferred finiteness checks", "N": 400,
            "grid_change_losses": [float(v) for v in a], "grid_change_losses_cpu":
            [float(v) for v in b], "loss_vs_cpu_rel": rel, "nan_prone_rollbacks": actions,
            "nan_prone_steps": int(run.metrics["steps"]), "nan_prone_final_loss": final,
            "nan_prone_ok": bool(actions) and m.isfinite(final)}  # fmt: skip


def _slug(name: str) -> str:
    words = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_").split("_")
    return "_".join(w for w in words if w not in ("nvidia", "geforce", "tesla")) or "gpu"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--big", type=int, default=1_000_000, help="points of the large row")
    args = ap.parse_args(argv)
    dev = args.device
    cuda = dev.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        ap.error(f"--device {dev}: no CUDA device (torch.cuda.is_available() is False)")
    apply_allocator("kanpde")  # as kanpde's trainer does on the CPU (no effect on CUDA memory)
    name = torch.cuda.get_device_name(torch.device(dev)) if cuda else "cpu"
    out = {"torch": torch.__version__, "gpu": name if cuda else None, "rows": []}
    failed = False
    # the trainer's own Adam loop first: one timing, the library as a user runs it
    jobs = [("trainer", None, 10_000), ("edited", None, 400), ("edited-step", {}, 2601)]
    jobs += [("deferred", None, 400)]
    jobs += [
        ("kan", {"grid": 10}, 10_000),
        ("kan", {"grid": 10}, 2601),
        ("kan", {"grid": 50}, 10_000),
        ("kan", {"grid": 10}, args.big),
        ("mlp", {"type": "mlp", "width": [2, 100, 100, 100, 1]}, 10_000),
    ]
    for kind, cfg, n_int in jobs:
        try:
            if kind == "trainer":
                row = trainer_adam(n_int, dev, 3000 if cuda else 20)
            elif kind == "deferred":
                row = deferred_checks(dev)
            elif kind == "edited":
                row = edited_solve(dev)
            elif kind == "edited-step":
                row = measure("kan, last layer symbolic", cfg, n_int, dev, edited_model(dev))
            else:
                row = measure(kind, cfg, n_int, dev)
        except Exception as e:  # noqa: BLE001 - record it; the other rows still run
            row = {"model": kind, "cfg": cfg, "N": n_int,
                   "error": error_text(e)}  # fmt: skip
        checks = ("plain_loss_rel_err", "plain_grad_rel_err", "graph_grad_rel_err")
        errs = [row.get(k, 0.0) for k in checks]
        # 20 L-BFGS steps may amplify round-off between devices: 1e-6 for the edited solve
        drift = row.get("loss_vs_cpu_rel", 0.0) <= 1e-6
        row["ok"] = "error" not in row and all(e <= TOL for e in errs) and drift
        row["ok"] = row["ok"] and row.get("nan_prone_ok", True)
        failed |= not row["ok"]
        out["rows"].append(row)
        print(json.dumps(row), flush=True)
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(torch.device(dev))
        # "h100" from "NVIDIA H100 80GB HBM3"
        # (others by their whole name, "rtx_4090", "l40s": one file per kind of GPU)
        model_name = re.search(r"\b([A-Z]+\d+)\b", name)
        tag = model_name.group(1).lower() if model_name else _slug(name) if cuda else "cpu"
        # a partial file after every row, so a kill keeps them; the complete one last
        saved = save(f"gpu_smoke_{tag}", {"machine": machine(dev), "tolerance": TOL, **out},
                     partial=True)  # fmt: skip
    saved = save(f"gpu_smoke_{tag}", {"machine": machine(dev), "tolerance": TOL, **out})
    print(f"written: {saved}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

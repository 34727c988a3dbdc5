"""Quick GPU check: CUDA-graph replay matches eager, and Poisson-2D step throughput.

PYTHONPATH=. python benchmarks/gpu_smoke.py

Results: ``benchmarks/results/gpu_smoke_<gpu>.json`` (e.g. ``gpu_smoke_h100.json``), also copied
to ``$OUT`` when that is set.
"""

import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, save  # noqa: E402

import kanpde  # noqa: E402
from kanpde.losses import Residuals  # noqa: E402
from kanpde.training import _CapturedGradient, build_model  # noqa: E402

if not torch.cuda.is_available():
    sys.exit("gpu_smoke.py: no CUDA device (torch.cuda.is_available() is False)")
dev = "cuda"
p = kanpde.load_problem("problems/poisson2d.py")
out = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0), "rows": []}


def rate(fn, seconds=1.5):
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(10):
            fn()
        n += 10
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


def measure(kind: str, cfg: dict, n_int: int) -> dict:
    torch.manual_seed(0)
    m = build_model(p, cfg, torch.float64, dev)
    pts = dict(p.points, interior=n_int, method="sobol")
    residuals = Residuals(p, m, pts, {"pde": 0.01}, torch.float64, dev)
    params = list(m.parameters())

    def eager():
        for q in params:
            q.grad = None
        loss, _ = residuals()
        loss.backward(inputs=params)

    eager()
    g_eager = [q.grad.clone() for q in params]
    row = {"model": kind, "cfg": cfg, "N": n_int, "eager_per_s": rate(eager)}
    try:
        cap = _CapturedGradient(residuals, params)
        cap.replay()
        err = max(float((q.grad - g).abs().max() / g.abs().max()) for q, g in zip(params, g_eager))
        row["graph_grad_rel_err"] = err
        row["graph_per_s"] = rate(cap.replay)
        adam = torch.optim.Adam(params, lr=1e-3, fused=True)

        def adam_step():
            cap.replay()
            adam.step()

        row["graph_adam_steps_per_s"] = rate(adam_step)
    except Exception as e:  # noqa: BLE001 - report, do not stop the other measurements
        row["graph_error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
    row["max_mem_gb"] = torch.cuda.max_memory_allocated() / 2**30
    return row


for kind, cfg, n_int in [
    ("kan", {"grid": 10}, 10_000),
    ("kan", {"grid": 10}, 2601),
    ("kan", {"grid": 50}, 10_000),
    ("kan", {"grid": 10}, 1_000_000),
    ("mlp", {"type": "mlp", "width": [2, 100, 100, 100, 1]}, 10_000),
]:
    row = measure(kind, cfg, n_int)
    out["rows"].append(row)
    print(json.dumps(row), flush=True)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()

# "h100" from "NVIDIA H100 80GB HBM3"
model_name = re.search(r"\b([A-Z]+\d+)\b", torch.cuda.get_device_name(0))
gpu = model_name.group(1).lower() if model_name else "gpu"
saved = save(f"gpu_smoke_{gpu}", {"machine": machine(dev), **out})
print(f"written: {saved}")
if os.environ.get("OUT"):  # the device tool's output folder
    shutil.copy(saved, os.environ["OUT"])
sys.exit(0)

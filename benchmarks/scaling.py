"""Cost of the Poisson-2D PINN step against the number of points N and the grid size G.

    python benchmarks/scaling.py --device cpu --threads 1
    python benchmarks/scaling.py --device cuda

Each row: seconds per loss+gradient evaluation of a [2, 10, 1] KAN (CUDA-graph replay on a
GPU). Results: ``benchmarks/results/scaling-<device>.json``; settings other than the defaults
add to the name (``-float32``, ``-<k>threads``, ``-n<N1>_<N2>...``, ``-g<G1>_<G2>...``,
``-ng<N>`` for ``--n-for-grids``, ``-default-allocator``, ``-<tag>`` with ``--tag``), so
that a trial leaves the file the README cites alone; ``-partial`` marks the results so far of
a run still going.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_allocator_option, apply_allocator, error_text, machine, rate, save  # noqa: E402

import kanpde  # noqa: E402
from kanpde.losses import Residuals  # noqa: E402
from kanpde.training import _CapturedGradient, build_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def boundary_points(n: int) -> int:
    """Boundary points beside ``n`` interior ones (the 2601 : 204 of poisson2d, about)."""
    return max(4, n // 12)


def step_time(grid: int, n: int, device: str, dtype, seconds: float) -> float:
    problem = kanpde.load_problem(ROOT / "problems" / "poisson2d.py")
    torch.manual_seed(0)
    model = build_model(problem, {"grid": grid}, dtype, device)
    points = {"interior": n, "boundary": boundary_points(n), "method": "sobol"}
    residuals = Residuals(problem, model, points, problem.weights, dtype, device)
    params = list(model.parameters())
    if device.startswith("cuda"):
        fn = _CapturedGradient(residuals, params).replay
    else:

        def fn():
            for p in params:
                p.grad = None
            loss, _ = residuals()
            loss.backward(inputs=params)

    return 1.0 / rate(fn, device, seconds)


DEFAULT_N = {"cpu": "1000,3000,10000,30000,100000", "cuda": "1000,10000,100000,300000,1000000"}
DEFAULT_GRIDS = "5,10,20,50,100"
DEFAULT_N_FOR_GRIDS = 2601


def _default_n(device: str) -> str:
    return DEFAULT_N.get(device.split(":")[0], DEFAULT_N["cpu"])


def _listed(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def results_name(args) -> str:
    """``scaling-<device>``, with the settings that differ from the defaults added."""
    kind = args.device.split(":")[0]
    name = f"scaling-{kind}"
    if args.dtype != "float64":
        name += f"-{args.dtype}"
    if kind == "cpu" and args.threads != 1:
        name += f"-{torch.get_num_threads()}threads"
    if _listed(args.n) != _listed(_default_n(args.device)):
        name += "-n" + "_".join(map(str, _listed(args.n)))
    if _listed(args.grids) != _listed(DEFAULT_GRIDS):
        name += "-g" + "_".join(map(str, _listed(args.grids)))
    if args.n_for_grids != DEFAULT_N_FOR_GRIDS:
        name += f"-ng{args.n_for_grids}"
    if args.allocator != "kanpde":
        name += f"-{args.allocator}-allocator"
    return name + (f"-{args.tag}" if args.tag else "")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    ap.add_argument("--threads", type=int)
    ap.add_argument(
        "--n",
        help=f"interior point counts (default {DEFAULT_N['cpu']}; on CUDA {DEFAULT_N['cuda']})",
    )
    ap.add_argument("--grids", default=DEFAULT_GRIDS)
    ap.add_argument("--n-for-grids", type=int, default=DEFAULT_N_FOR_GRIDS)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--tag", help="appended to the results file's name (e.g. the machine's)")
    add_allocator_option(ap)
    args = ap.parse_args(argv)
    if args.n is None:
        args.n = _default_n(args.device)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        ap.error(f"--device {args.device}: no CUDA device (torch.cuda.is_available() is False)")
    apply_allocator(args.allocator)
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype, dev = getattr(torch, args.dtype), args.device
    by_n, by_g = [], []

    def timed(grid: int, n: int) -> dict:
        try:
            return {"seconds_per_step": step_time(grid, n, dev, dtype, args.seconds)}
        except Exception as e:  # noqa: BLE001 - e.g. out of memory: record it, go on
            if dev.startswith("cuda"):
                torch.cuda.empty_cache()
            return {"error": error_text(e)}

    def write(partial: bool = True) -> tuple[Path, dict]:
        # a partial file after every row, so a run stopped by a time limit keeps what it
        # measured; the complete one last
        ok_n = [r for r in by_n if "error" not in r]
        ns = np.array([r["N"] for r in ok_n], float)
        ts = np.array([r["seconds_per_step"] for r in ok_n])
        big = ns >= 1e5 if (ns >= 1e5).sum() >= 2 else ns >= (ns[len(ns) // 2] if len(ns) else 0)
        slope = (
            float(np.polyfit(np.log(ns[big]), np.log(ts[big]), 1)[0]) if big.sum() >= 2 else None
        )
        g = {r["grid"]: r["seconds_per_step"] for r in by_g if "error" not in r}
        summary = {
            "cost_exponent_in_N_large": slope,
            "G50_over_G5": g[50] / g[5] if 5 in g and 50 in g else None,
        }
        payload = {"machine": machine(dev), "dtype": args.dtype, "by_N": by_n, "by_G": by_g}
        return save(results_name(args), {**payload, **summary}, partial=partial), summary

    for n in _listed(args.n):
        # us_per_point: per interior point (boundary_points(N) come on top)
        row = {"N": n, "boundary": boundary_points(n), "grid": 10, **timed(10, n)}
        if "error" in row:
            print(f"N={n:>8}  G=10  {row['error']}", flush=True)
        else:
            t = row["seconds_per_step"]
            row["us_per_point"] = 1e6 * t / n
            print(
                f"N={n:>8}  G=10  {1e3 * t:9.3f} ms/step  {1e6 * t / n:7.3f} µs/point", flush=True
            )
        by_n.append(row)
        write()
    for g in _listed(args.grids):
        m = args.n_for_grids
        row = {"N": m, "boundary": boundary_points(m), "grid": g, **timed(g, m)}
        if "error" in row:
            print(f"N={args.n_for_grids:>8}  G={g:<3}  {row['error']}", flush=True)
        else:
            t = row["seconds_per_step"]
            print(f"N={args.n_for_grids:>8}  G={g:<3}  {1e3 * t:9.3f} ms/step", flush=True)
        by_g.append(row)
        write()
    path, summary = write(partial=False)
    print(summary)
    print(f"written: {path}")
    return 0 if all("error" not in r for r in by_n + by_g) else 1


if __name__ == "__main__":
    sys.exit(main())

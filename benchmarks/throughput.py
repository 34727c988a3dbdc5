"""Throughput of the Poisson-2D PINN step: loss + gradient evaluations per second.

One evaluation = forward pass, Laplacian, boundary term, backward pass to all parameters, for
the KAN paper's Poisson-2D problem (51×51 interior mesh + 4×51 boundary points by default).
kanpde's KAN at several grid sizes and its MLP are measured side by side, in the same process,
with pykan 0.2.8's own recipe and DeepXDE's MLP when they are installed
(``pip install -e ".[bench]"``).
Results: ``benchmarks/results/throughput-<device>-<dtype>-<n>threads.json``; variants add to the
name (``-no-peers`` or ``-some-peers`` when peers are left out or missing,
``-default-allocator``, ``-n<N>`` for another mesh, ``-<tag>`` with ``--tag``) so that they leave
the side-by-side file alone; ``-partial`` marks the results so far of a run still going.

    python benchmarks/throughput.py --device cpu --threads 1
    python benchmarks/throughput.py --device cuda
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_allocator_option, apply_allocator, error_text, machine, rate, save  # noqa: E402

import kanpde  # noqa: E402
from kanpde.losses import Residuals  # noqa: E402
from kanpde.training import _CapturedGradient, build_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def kanpde_step(cfg: dict, n_side: int, device: str, dtype, graphs: bool):
    """One loss+gradient evaluation of kanpde on poisson2d (the problem file's loss)."""
    problem = kanpde.load_problem(ROOT / "problems" / "poisson2d.py")
    torch.manual_seed(0)
    model = build_model(problem, cfg, dtype, device)
    points = {"interior": n_side * n_side, "boundary": 4 * n_side, "method": "grid"}
    residuals = Residuals(problem, model, points, problem.weights, dtype, device)
    params = list(model.parameters())
    if graphs:
        return _CapturedGradient(residuals, params).replay

    def step():
        for p in params:
            p.grad = None
        loss, _ = residuals()
        loss.backward(inputs=params)

    return step


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    ap.add_argument("--grids", default="5,10,20,50,100")
    ap.add_argument("--n-side", type=int, default=51, help="interior mesh side (N = n²)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--tag", help="appended to the results file's name (e.g. the machine's)")
    add_allocator_option(ap)
    args = ap.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        ap.error(f"--device {args.device}: no CUDA device (torch.cuda.is_available() is False)")
    apply_allocator(args.allocator)
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    dev = args.device
    cuda = dev.startswith("cuda")
    steps, errors = {}, {}

    def add(name: str, build) -> None:
        # One failing implementation (a missing peer, running out of memory) is recorded and
        # the others are still measured.
        try:
            steps[name] = build()
        except Exception as e:  # noqa: BLE001
            errors[name] = error_text(e)
            print(f"{name}: not measured ({errors[name]})", file=sys.stderr)

    # On a GPU kanpde's trainer replays one captured evaluation (a CUDA graph); the eager rows
    # show what the capture adds.
    how = " (CUDA graph)" if cuda else ""
    mlp = {"type": "mlp", "width": [2, 100, 100, 100, 1]}
    for g in [int(g) for g in args.grids.split(",")]:
        add(f"kanpde KAN [2,10,1] G={g}{how}",
            lambda g=g: kanpde_step({"grid": g}, args.n_side, dev, dtype, cuda))  # fmt: skip
    add(f"kanpde MLP [2,100,100,100,1]{how}",
        lambda: kanpde_step(mlp, args.n_side, dev, dtype, cuda))  # fmt: skip
    if cuda:
        add("kanpde KAN [2,10,1] G=10 (eager)",
            lambda: kanpde_step({"grid": 10}, args.n_side, dev, dtype, False))  # fmt: skip
        add("kanpde MLP [2,100,100,100,1] (eager)",
            lambda: kanpde_step(mlp, args.n_side, dev, dtype, False))  # fmt: skip
    if not args.no_peers:
        import peers

        pykan = f"pykan {peers.versions()['pykan'] or '(not installed)'}"  # the one measured
        add(f"{pykan} KAN [2,10,1] G=10 (its recipe)",
            lambda: peers.pykan_poisson_step(n_side=args.n_side, grid=10, device=dev,
                                             dtype=dtype))  # fmt: skip
        # The tutorial's loss also evaluates a first-derivative Jacobian it never uses; the
        # same step without it bounds how much of the ratio that pass accounts for.
        add(f"{pykan}, same without its unused d1 pass",
            lambda: peers.pykan_poisson_step(n_side=args.n_side, grid=10, device=dev,
                                             dtype=dtype, drop_redundant_d1=True))  # fmt: skip
        add("DeepXDE MLP [2,100,100,100,1]",
            lambda: peers.deepxde_poisson_step(n_interior=args.n_side**2,
                                               n_boundary=4 * args.n_side, device=dev,
                                               dtype=dtype))  # fmt: skip

    def measured(name, f):
        if name in errors:
            return float("nan")
        try:
            return rate(f, dev, args.seconds)
        except Exception as e:  # noqa: BLE001 - e.g. out of memory mid-run: keep the others
            errors[name] = error_text(e)
            steps.pop(name, None)
            return float("nan")

    def table(best: dict[str, float]) -> list[dict]:
        best = {k: v for k, v in best.items() if k not in errors}
        # the recipe itself, never its leaner variant: if the recipe failed there is no ratio
        ref = next((v for k, v in best.items() if k.startswith("pykan") and "(its recipe)" in k),
                   None)  # fmt: skip
        lean = next((v for k, v in best.items() if "unused d1" in k), None)
        return [{"implementation": name, "evals_per_s": v, "vs_pykan": v / ref if ref else None,
                 "vs_pykan_without_d1": v / lean if lean else None}
                for name, v in best.items()]  # fmt: skip

    def results_name() -> str:
        name = f"throughput-{dev.split(':')[0]}-{args.dtype}-{torch.get_num_threads()}threads"
        # A kanpde-only run, or one whose peers could not be built or measured (not
        # installed, out of memory), and the variants of the measurement leave the README's
        # side-by-side files alone.
        if args.no_peers or not any(not k.startswith("kanpde") for k in steps):
            name += "-no-peers"
        elif any(not k.startswith("kanpde") for k in errors):
            name += "-some-peers"
        if any(k.startswith("kanpde") for k in errors):  # a row of kanpde's own missing
            name += "-with-errors"
        if args.allocator != "kanpde":
            name += f"-{args.allocator}-allocator"
        if args.n_side != 51:
            name += f"-n{args.n_side**2}"
        return name + (f"-{args.tag}" if args.tag else "")

    def write(rounds: int, partial: bool) -> Path:
        payload = {"machine": machine(dev), "dtype": args.dtype, "n_interior": args.n_side**2,
                   "n_boundary": 4 * args.n_side, "graphs": cuda, "rounds": rounds,
                   "rows": table(best), "not_measured": errors}  # fmt: skip
        return save(results_name(), payload, partial=partial)

    best: dict[str, float] = {}
    for done in range(1, args.rounds + 1):
        # Interleaved rounds, each implementation's best kept (on a shared machine noise only
        # slows a measurement down); a partial file after every measurement keeps what was
        # measured if a time limit ends the run.
        for impl, f in list(steps.items()):
            best[impl] = max(best.get(impl, 0.0), measured(impl, f))
            write(done, partial=True)
    path = write(args.rounds, partial=False)
    rows = table(best)
    print("| implementation | evals/s | × pykan | × pykan without d1 |\n|---|---:|---:|---:|")
    for r in rows:
        ratio = f"{r['vs_pykan']:.1f}" if r["vs_pykan"] else "–"
        lean = f"{r['vs_pykan_without_d1']:.1f}" if r["vs_pykan_without_d1"] else "–"
        print(f"| {r['implementation']} | {r['evals_per_s']:.1f} | {ratio} | {lean} |")
    print(f"written: {path}")
    return 1 if any(k.startswith("kanpde") for k in errors) else 0


if __name__ == "__main__":
    sys.exit(main())

"""Wall time until poisson2d reaches a target test MSE: kanpde, pykan's recipe, DeepXDE's MLP.

    python benchmarks/time_to_accuracy.py --device cpu --threads 1 --target 1e-7

kanpde runs the problem file's default KAN and schedule; pykan and DeepXDE run their own
recipes through ``benchmarks/peers.py`` (installed with ``pip install -e ".[bench]"``). All three
are timed the same way: a wall clock from the call that builds the model to the check that sees
the target, with only the test-error evaluations (every ``--check`` steps for kanpde) paused.
One-time process costs (torch's optimizer machinery imports ``torch._dynamo`` on first use,
about 1 s) are paid before any clock starts. Results: ``benchmarks/results/tta-<device>.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_allocator_option, apply_allocator, machine, save  # noqa: E402

import kanpde  # noqa: E402
from kanpde.training import Trainer, _BudgetSpent  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def kanpde_tta(target: float, device: str, max_seconds: float, check: int, seed: int) -> dict:
    history: list[tuple[float, int, float, float]] = []
    reached: dict = {}
    paused = [0.0]  # seconds spent in test-error evaluations
    metrics = Trainer.metrics

    def timed_metrics(self):
        t = time.perf_counter()
        try:
            return metrics(self)
        finally:
            paused[0] += time.perf_counter() - t

    def callback(trainer, row):
        wall = time.perf_counter() - t0 - paused[0]
        history.append((wall, row["step"], row["mse"], row["time"]))
        if row["mse"] <= target and not reached:
            reached.update(seconds=wall, trainer_seconds=row["time"], step=row["step"],
                           mse=row["mse"])  # fmt: skip
            raise _BudgetSpent  # stop here: the target is reached

    Trainer.metrics = timed_metrics
    t0 = time.perf_counter()
    try:
        run = kanpde.solve(ROOT / "problems" / "poisson2d.py", device=device, progress=False,
                           log_every=check, callback=callback, max_seconds=max_seconds,
                           seed=seed, checkpoint_every=0)  # fmt: skip
    finally:
        Trainer.metrics = metrics
    return {
        "reached": bool(reached),
        "seconds_to_target": reached.get("seconds"),
        "steps_to_target": reached.get("step"),
        # the trainer's own clock (optimizer work only, no setup), for comparison
        "trainer_seconds_to_target": reached.get("trainer_seconds"),
        "history_columns": ["wall_seconds", "step", "test_mse", "trainer_seconds"],
        "final_mse": run.metrics["mse"],
        "history": history,
        "recipe": "problems/poisson2d.py defaults: KAN [2,10,1], L-BFGS, grids 5->10->20",
    }


def _warm_up() -> None:
    """Pay one-time process costs before any clock starts (whoever ran first paid them)."""
    p = torch.nn.Parameter(torch.zeros(2))
    for opt in (torch.optim.LBFGS([p]), torch.optim.Adam([p])):
        p.grad = torch.ones(2)
        opt.step(lambda: (p**2).sum()) if isinstance(opt, torch.optim.LBFGS) else opt.step()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--target", type=float, default=1e-7)
    ap.add_argument("--max-seconds", type=float, default=600)
    ap.add_argument("--check", type=int, default=10, help="kanpde steps between test checks")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", choices=["kanpde", "pykan", "deepxde"], action="append")
    add_allocator_option(ap)
    args = ap.parse_args(argv)
    apply_allocator(args.allocator)
    if args.threads:
        torch.set_num_threads(args.threads)
    which = args.only or ["kanpde", "pykan", "deepxde"]
    _warm_up()
    results = {}
    if "kanpde" in which:
        results["kanpde"] = kanpde_tta(args.target, args.device, args.max_seconds, args.check,
                                       args.seed)  # fmt: skip
    try:
        import peers

        if "pykan" in which:
            results["pykan"] = peers.pykan_time_to_accuracy(
                target_mse=args.target, max_seconds=args.max_seconds, device=args.device,
                seed=args.seed, stop_at_target=True,
            )  # fmt: skip
        if "deepxde" in which:
            results["deepxde"] = peers.deepxde_time_to_accuracy(
                target_mse=args.target, max_seconds=args.max_seconds, device=args.device,
                seed=args.seed, stop_at_target=True,
            )  # fmt: skip
    except ImportError as e:
        print(f"peers not measured ({e}); pip install -e '.[bench]'", file=sys.stderr)
    for name, r in results.items():
        t = r.get("seconds_to_target")
        print(f"{name:8s} reached={r['reached']}  seconds={t if t is None else round(t, 1)}  "
              f"final_mse={r['final_mse']:.2e}")  # fmt: skip
    path = save(
        # a run of one implementation leaves the three-way file alone
        f"tta-{args.device.split(':')[0]}" + (f"-{'-'.join(args.only)}" if args.only else ""),
        {
            "machine": machine(args.device),
            "target_mse": args.target,
            "clock": "wall clock from model construction to the target check, test-error "
            "evaluations paused, one-time imports warmed up beforehand (all three alike)",
            "results": results,
        },
    )
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

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
import importlib.util
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_allocator_option, apply_allocator, error_text, machine, save  # noqa: E402

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


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken install counts as none
        return False


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
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        ap.error(f"--device {args.device}: no CUDA device (torch.cuda.is_available() is False)")
    which = args.only or ["kanpde", "pykan", "deepxde"]
    # A peer that is not installed is left out up front, and the file's name says so: a run
    # without it must not take the place of the three-way file the README cites.
    modules = {"pykan": "kan", "deepxde": "deepxde"}
    missing = [w for w in which if w in modules and not _installed(modules[w])]
    for w in missing:
        print(f"{w} not measured (not installed); pip install -e '.[bench]'", file=sys.stderr)
    _warm_up()
    results: dict = {}
    errors: dict = {}
    todo = [w for w in which if w not in missing]

    def write(partial: bool) -> Path:
        name = f"tta-{args.device.split(':')[0]}"
        # a run of some implementations, or one without any of them (not installed, or
        # failed while it ran), leaves the three-way file alone
        left_out = missing + list(errors)
        if args.only:
            name += f"-{'-'.join(w for w in which if w not in left_out)}"
        elif left_out:
            name += f"-without-{'-'.join(left_out)}"
        done = [w for w in todo if w in results or w in errors]
        return save(
            name,
            {
                "machine": machine(args.device),
                "target_mse": args.target,
                "dtype": "float64",  # poisson2d's default and both peers' recipes
                "clock": "wall clock from model construction to the target check, test-error "
                "evaluations paused, one-time imports warmed up beforehand (all three alike)",
                "results": results,
                "not_measured": {**{w: "not installed" for w in missing}, **errors},
                "still_to_run": [w for w in todo if w not in done],
            },
            partial=partial,
        )

    for done, who in enumerate(todo, 1):
        kwargs = dict(target_mse=args.target, max_seconds=args.max_seconds, device=args.device,
                      seed=args.seed, stop_at_target=True)  # fmt: skip
        try:
            if who == "kanpde":
                results[who] = kanpde_tta(args.target, args.device, args.max_seconds, args.check,
                                          args.seed)  # fmt: skip
            else:
                import peers

                results[who] = getattr(peers, f"{who}_time_to_accuracy")(**kwargs)
        except Exception as e:  # noqa: BLE001 - one failing implementation, the others still run
            errors[who] = error_text(e)
            print(f"{who}: not measured ({errors[who]})", file=sys.stderr)
        if who in results:
            r = results[who]
            t = r.get("seconds_to_target")
            print(f"{who:8s} reached={r['reached']}  seconds={t if t is None else round(t, 1)}  "
                  f"final_mse={r['final_mse']:.2e}")  # fmt: skip
        # a partial file after each implementation, so a stop during a peer's long run keeps
        # the others (and leaves the complete file of an earlier run alone)
        path = write(partial=done < len(todo))
    if not todo:
        print("nothing measured", file=sys.stderr)
        return 1
    print(f"written: {path}")
    return 1 if "kanpde" in errors else 0


if __name__ == "__main__":
    sys.exit(main())

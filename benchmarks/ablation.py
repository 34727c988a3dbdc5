"""What each CPU fast path of the KAN jet is worth: the Poisson-2D step with them on and off.

    python benchmarks/ablation.py --threads 1

Variants, measured in turn within one process (so machine noise hits all alike): ``fused`` is
the default (the last layer's autograd function of ``kanpde.nn.one_output``, fed the first
layer's jet packed in the sparse product's memory); ``unpacked`` hands the first layer's jet
over as three feature-major tensors; ``plain`` records the last layer with plain autograd.
Results: ``benchmarks/results/ablation-cpu.json`` (median and best milliseconds per loss +
gradient evaluation).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_allocator_option, apply_allocator, machine, save  # noqa: E402

import kanpde  # noqa: E402
from kanpde.losses import Residuals  # noqa: E402
from kanpde.nn.jet import normalize_pairs, public  # noqa: E402
from kanpde.nn.kan import KAN, KANLayer  # noqa: E402
from kanpde.training import build_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def unpacked_jet(self, x, order=2, pairs=()):
    """``KAN.jet`` without the packed hand-over from the first layer."""
    pairs = normalize_pairs(pairs) if order >= 2 else ()
    inner, h = None, x.t()
    for i, layer in enumerate(self.layers):
        inner = layer._jet(inner, h, order, pairs, points=x if i == 0 else None)
        h = inner[0]
    return public(inner, pairs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--steps", type=int, default=30, help="evaluations per round")
    add_allocator_option(ap)
    args = ap.parse_args()
    apply_allocator(args.allocator)
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)

    problem = kanpde.load_problem(ROOT / "problems" / "poisson2d.py")
    torch.manual_seed(0)
    model = build_model(problem, {"grid": 10, "width": [2, 10, 1]}, dtype, "cpu")
    points = {"interior": 2601, "boundary": 204, "method": "grid"}
    residuals = Residuals(problem, model, points, problem.weights, dtype, "cpu")
    params = list(model.parameters())

    def step():
        for p in params:
            p.grad = None
        loss, _ = residuals()
        loss.backward(inputs=params)

    fused, packed = KANLayer._one_output, KAN.jet
    variants = {
        "fused": (fused, packed),
        "unpacked": (fused, unpacked_jet),
        "plain": (lambda self, order, device: False, packed),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for _ in range(args.rounds):
            for name, (one_output, jet) in variants.items():
                KANLayer._one_output, KAN.jet = one_output, jet
                for _ in range(5):
                    step()
                t0 = time.perf_counter()
                for _ in range(args.steps):
                    step()
                times[name].append((time.perf_counter() - t0) / args.steps * 1e3)
    finally:
        KANLayer._one_output, KAN.jet = fused, packed
    rows = [
        {"variant": name, "median_ms": statistics.median(t), "best_ms": min(t)}
        for name, t in times.items()
    ]
    for r in rows:
        print(f"{r['variant']:>9}: median {r['median_ms']:.2f} ms, best {r['best_ms']:.2f} ms")
    path = save("ablation-cpu", {"machine": machine("cpu"), "dtype": args.dtype, "rows": rows})
    print(f"written: {path}")


if __name__ == "__main__":
    main()

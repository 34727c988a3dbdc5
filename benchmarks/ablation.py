"""What each CPU fast path of the KAN jet is worth: the Poisson-2D step with them on and off.

    python benchmarks/ablation.py --threads 1

Variants, measured in turn within one process (so machine noise hits all alike): ``fused`` is
the default (the last layer's autograd function of ``kanpde.nn.one_output``, fed the first
layer's jet packed in the sparse product's memory); ``unpacked`` hands the first layer's jet
over as three feature-major tensors; ``plain`` records the last layer with plain autograd.
Results: ``benchmarks/results/ablation-cpu.json`` (``-float32`` added for that dtype; median and
best milliseconds per loss + gradient evaluation).
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
from throughput import kanpde_step  # noqa: E402

from kanpde.nn.kan import KANLayer  # noqa: E402

FUSED, JET = KANLayer._one_output, KANLayer._jet


def unpacked(self, *args, **kwargs):
    """``KANLayer._jet`` that never packs the first layer's jet."""
    return JET(self, *args, **{**kwargs, "pack": False})


def plain(self, order, device):
    return False


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
    # The methods are looked up on the class at every call, so patching them switches the
    # paths of an already built model (its losses hold a bound KAN.jet, which calls them).
    step = kanpde_step({"grid": 10}, 51, "cpu", getattr(torch, args.dtype), graphs=False)
    variants = {"fused": (FUSED, JET), "unpacked": (FUSED, unpacked), "plain": (plain, JET)}
    times: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for _ in range(args.rounds):
            for name, (one_output, jet) in variants.items():
                KANLayer._one_output, KANLayer._jet = one_output, jet
                for _ in range(5):
                    step()
                t0 = time.perf_counter()
                for _ in range(args.steps):
                    step()
                times[name].append((time.perf_counter() - t0) / args.steps * 1e3)
    finally:
        KANLayer._one_output, KANLayer._jet = FUSED, JET
    rows = [
        {"variant": name, "median_ms": statistics.median(t), "best_ms": min(t)}
        for name, t in times.items()
    ]
    for r in rows:
        print(f"{r['variant']:>9}: median {r['median_ms']:.2f} ms, best {r['best_ms']:.2f} ms")
    name = "ablation-cpu" + ("" if args.dtype == "float64" else f"-{args.dtype}")
    path = save(name, {"machine": machine("cpu"), "dtype": args.dtype, "rows": rows})
    print(f"written: {path}")


if __name__ == "__main__":
    main()

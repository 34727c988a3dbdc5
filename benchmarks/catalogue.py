"""Run every problem's defaults and tabulate accuracy and cost (the README's catalogue table).

    python benchmarks/catalogue.py --jobs 2 --readme        # all problems/*.py, 2 at a time
    python benchmarks/catalogue.py problems/burgers1d.py    # some of them
    python benchmarks/catalogue.py --seed 1 problems/wave1d.py   # another seed

Each problem runs in its own process with one torch thread (CPU). Results are merged into
``benchmarks/results/catalogue.json`` (``catalogue-seed<N>.json`` for ``--seed N`` other than 0);
``--readme`` rewrites the table between the ``<!-- catalogue -->`` markers of README.md from the
seed-0 file. Each row keeps the kanpde warnings its run gave (``"warnings"``; rows written
before 2026-12-02 lack the key).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, _commit, machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = RESULTS / "catalogue.json"
START, END = "<!-- catalogue:start -->", "<!-- catalogue:end -->"

ONE = """
import json, sys, time, torch, warnings
torch.set_num_threads(1)
import kanpde
t0 = time.time()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", kanpde.KanpdeWarning)
    run = kanpde.solve(sys.argv[1], device=sys.argv[2], seed=int(sys.argv[3]), progress=False,
                       checkpoint_every=0)
p = run.config
m = run.metrics
problem = kanpde.load_problem(sys.argv[1])
print(json.dumps({
    "problem": problem.name, "file": sys.argv[1], "description": problem.description,
    "reference": "exact" if problem.exact is not None else "own solver",
    "model": p["model"]["type"], "width": p["model"]["width"],
    "grid": p["model"].get("grid"), "basis": p["model"].get("basis", "bspline"),
    "parameters": m["parameters"],
    "metrics": {k: v for k, v in m.items() if isinstance(v, (int, float))},
    "wall_time": time.time() - t0, "device": p["device"], "dtype": p["dtype"],
    "seed": p["seed"],
    # what a user running the defaults is told (a grid extension that raised the loss, ...)
    "warnings": [str(w.message) for w in caught if issubclass(w.category, kanpde.KanpdeWarning)],
}))
"""


def run_one(path: str, device: str, seed: int = 0) -> dict:
    t0 = time.time()
    r = subprocess.run([sys.executable, "-c", ONE, path, device, str(seed)], cwd=ROOT,
                       capture_output=True, text=True)  # fmt: skip
    if r.returncode != 0:
        tail = (r.stderr.strip().splitlines() or ["failed"])[-1]
        return {"file": path, "error": tail, "wall_time": time.time() - t0}
    return json.loads(r.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    head = (
        "| problem | PDE | reference | model | params | rel. L2 | MSE | train / wall time (s) "
        "| device |\n"
        "|---|---|---|---|---:|---|---|---|---|\n"
    )
    lines = []
    for r in sorted(rows, key=lambda r: r.get("problem", r["file"])):
        if "error" in r:
            lines.append(f"| {Path(r['file']).stem} | | | | | failed: {r['error']} | | | |")
            continue
        m = r["metrics"]
        parts = [k for k in m if k.startswith("rel_l2_")]
        rel = f"{m['rel_l2']:.2e}"
        if parts:
            rel += " (" + ", ".join(f"{k[7:]} {m[k]:.1e}" for k in parts) + ")"
        found = [k for k in m if k.startswith("param_")]  # an inverse problem's unknowns
        if found:
            rel += "; " + ", ".join(f"{k[6:]} = {m[k]:.6g}" for k in found)
        width = ",".join(map(str, r["width"]))
        model = f"{r['model'].upper()} [{width}]"
        if r.get("basis", "bspline") != "bspline":
            model += f" {r['basis']}"
        lines.append(
            f"| {r['problem']} | {r['description']} | {r['reference']} | "
            f"{model} | {r['parameters']} | {rel} | {m['mse']:.2e} | "
            f"{m['train_time']:.0f} / {r['wall_time']:.0f} | {r['device']}, 1 thread |"
        )
    return head + "\n".join(lines) + "\n"


def update_readme(text: str) -> None:
    readme = ROOT / "README.md"
    s = readme.read_text()
    if START not in s or END not in s:
        raise SystemExit(f"README.md has no {START} ... {END} markers")
    a, b = s.index(START) + len(START), s.index(END)
    readme.write_text(s[:a] + "\n" + text + s[b:])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("problems", nargs="*", help="problem files (default: problems/*.py)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--jobs", type=int, default=1, help="problems run at the same time")
    ap.add_argument("--readme", action="store_true", help="rewrite the README table")
    ap.add_argument("--table-only", action="store_true", help="no runs: table from the JSON")
    ap.add_argument("--seed", type=int, default=0, help="seed of every run (default 0)")
    args = ap.parse_args(argv)
    if args.readme and args.seed != 0:
        raise SystemExit("--readme: the README's table is of seed 0")
    out = OUT if args.seed == 0 else OUT.with_name(f"catalogue-seed{args.seed}.json")
    old = json.loads(out.read_text()) if out.exists() else {"rows": []}
    rows = {r["file"]: r for r in old["rows"]}
    if not args.table_only:
        files = args.problems or sorted(
            str(p.relative_to(ROOT)) for p in ROOT.glob("problems/*.py")
        )

        def save() -> None:  # after every problem, so a crash loses nothing finished
            payload = {
                "date": time.strftime("%Y-%m-%d"),
                "command": "python " + " ".join(sys.argv),
                # what each problem's process ran with (not this parent's settings)
                "machine": {
                    **machine(args.device),
                    "torch_threads": 1,
                    "allocator": "freed memory kept (kanpde's trainer sets it in every run)",
                },
                "note": "one torch thread per problem; each row's 'run' says how many problems "
                "ran at the same time, the command that produced it and the commit it measured "
                "(where 'commit_source' says so, filled in later from the stored file that "
                "invocation wrote); machine.kanpde_commit is the last invocation's",
                "rows": list(rows.values()),
            }
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_suffix(".tmp")
            tmp.write_text(json.dumps(payload, indent=1))
            tmp.replace(out)

        with ThreadPoolExecutor(args.jobs) as pool:
            futures = [pool.submit(run_one, f, args.device, args.seed) for f in files]
            for fut in as_completed(futures):
                r = fut.result()
                # rows from earlier invocations keep their own conditions
                r["run"] = {"date": time.strftime("%Y-%m-%d"), "jobs": args.jobs,
                            "command": "python " + " ".join(sys.argv),
                            "kanpde_commit": _commit()}  # fmt: skip
                rows[r["file"]] = r
                save()
                status = r.get("error") or f"rel_l2 {r['metrics']['rel_l2']:.2e}"
                if r.get("warnings"):
                    status += f", {len(r['warnings'])} warning(s): " + " | ".join(r["warnings"])
                print(f"{r['file']}: {status} ({r['wall_time']:.0f} s)", flush=True)
    text = table(list(rows.values()))
    print(text)
    if args.readme:
        update_readme(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# Every GPU measurement issue 8 asks for, in one call on a lent GPU (about 4 minutes; the
# time limits below add up to 7): graph against eager and nested-autograd gradients and step
# rates, side-by-side throughput (pykan and DeepXDE join when importable), and the cost in N
# up to 10^6 and in G. Results: benchmarks/results/*cuda*.json and gpu_smoke_<gpu>.json,
# each as <name>-partial.json after every row and <name>.json when complete, copied to $OUT
# when set (the device tool's output folder).
# A copy without .git (the device tool's) names its commit through KANPDE_COMMIT, written out
# where the command is composed: $(git rev-parse HEAD) inside it would run on that copy.
#
#   KANPDE_COMMIT=<full hash of the commit> bash benchmarks/gpu_all.sh
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH=.
PYTHON=${PYTHON:-$(command -v python || command -v python3)}
status=0
run() {
    echo "== $*"
    timeout "$@" || status=1
}
commit=${KANPDE_COMMIT:-$(git rev-parse HEAD 2>/dev/null)}
echo "kanpde commit: ${commit:-unknown: the results will name none (set KANPDE_COMMIT)}"
run 120 "$PYTHON" benchmarks/gpu_smoke.py
run 150 "$PYTHON" benchmarks/throughput.py --device cuda --grids 5,10,50,100 --n-side 100 \
    --rounds 3 --seconds 1
run 150 "$PYTHON" benchmarks/scaling.py --device cuda --n 1000,10000,100000,300000,1000000 \
    --seconds 1
exit $status

#!/usr/bin/env bash
# Every GPU measurement issue 8 asks for, in one call on a lent GPU (about 8 minutes):
# graph-vs-eager correctness and step rates, side-by-side throughput (pykan and DeepXDE join
# when importable), and the cost in N up to 10^6 and in G. Results: benchmarks/results/*cuda*
# and gpu_smoke_*.json, copied to $OUT when set (the device tool's output folder).
#
#   bash benchmarks/gpu_all.sh
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH=.
status=0
run() {
    echo "== $*"
    timeout "$@" || status=1
}
run 150 python benchmarks/gpu_smoke.py
run 200 python benchmarks/throughput.py --device cuda --grids 5,10,50,100 --n-side 100 \
    --rounds 3 --seconds 1
run 200 python benchmarks/scaling.py --device cuda --n 1000,10000,100000,300000,1000000 \
    --seconds 1
if [ -n "${OUT:-}" ]; then
    cp benchmarks/results/*cuda* benchmarks/results/gpu_smoke*.json "$OUT"/ 2>/dev/null
fi
exit $status

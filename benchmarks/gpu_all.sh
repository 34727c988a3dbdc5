#!/usr/bin/env bash
# Every GPU measurement issue 8 asks for, in one call on a lent GPU (about 8 minutes):
# graph-vs-eager correctness and step rates, side-by-side throughput (pykan and DeepXDE join
# when importable), and the cost in N up to 10^6 and in G. Results: benchmarks/results/*cuda*
# and gpu_smoke_<gpu>.json; this run's files are copied to $OUT when set (the device tool's
# output folder).
#
#   bash benchmarks/gpu_all.sh
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH=.
status=0
stamp=$(mktemp)
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
    # only this run's files (gpu_smoke.py copies its own)
    find benchmarks/results -maxdepth 1 -name '*cuda*.json' -newer "$stamp" -exec cp {} "$OUT"/ \;
fi
exit $status

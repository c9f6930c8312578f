#!/bin/sh
# A stand-in for lce_benchmark_model on the emulated board (an aarch64 /bin/sh runs it): it loops
# --num_runs times, prints the real tool's output format, says --use_xnnpack was unconsumed (as a
# build without XNNPACK does), and kills itself with SIGSEGV for a graph named crash*.
graph=""; runs=1; xnn=""
for arg in "$@"; do
  case "$arg" in
    --graph=*) graph="${arg#--graph=}" ;;
    --num_runs=*) runs="${arg#--num_runs=}" ;;
    --use_xnnpack=*) xnn="$arg" ;;
    --help) echo "usage: lce_benchmark_model --graph=FILE"; exit 0 ;;
  esac
done
[ -n "$xnn" ] && echo "Unconsumed cmdline flags: $xnn"
if [ ! -f "$graph" ]; then echo "ERROR: Could not load graph $graph"; exit 1; fi
case "$(basename "$graph")" in crash*) kill -SEGV $$ ;; esac
i=0; acc=0
while [ "$i" -lt "$runs" ]; do
  j=0
  while [ "$j" -lt 200 ]; do acc=$((acc + j * 3)); j=$((j + 1)); done
  i=$((i + 1))
done
echo "Inference timings in us: Init: 2500, First inference: 9100, Warmup (avg): 9050, Inference (avg): 9000.5"
echo "count=$runs first=9100 curr=9000 min=8900 max=9100 avg=9000.5 std=50"
echo "Overall peak memory footprint (MB) via periodic monitoring: 12.5"

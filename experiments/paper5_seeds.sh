#!/usr/bin/env bash
# The committed paper5 results: three seeds of each family, one core per run, two runs side by
# side on the 2-core machine (conf/experiment/paper5.yaml states the budget), then archive.
#   bash experiments/paper5_seeds.sh
set -euo pipefail
export OMP_NUM_THREADS=1
q=(experiment=paper5 callbacks.progress_bar.refresh_rate=0)
stamp=$(date +%Y-%m-%d_%H-%M-%S)
( python -m fer_bench "${q[@]}" +model=cnn seed=0,1,2 hydra.sweep.dir=experiments/runs/paper5_${stamp}_a -m
  python -m fer_bench "${q[@]}" +model=lstm seed=0 hydra.sweep.dir=experiments/runs/paper5_${stamp}_b -m
) > /tmp/paper5_lane_a.log 2>&1 &
( python -m fer_bench "${q[@]}" +model=gan seed=0,1,2 hydra.sweep.dir=experiments/runs/paper5_${stamp}_c -m
  python -m fer_bench "${q[@]}" +model=lstm seed=1,2 hydra.sweep.dir=experiments/runs/paper5_${stamp}_d -m
) > /tmp/paper5_lane_b.log 2>&1 &
wait
python -m fer_bench.report experiments/runs/paper5_${stamp}_* --archive experiments/results/paper5

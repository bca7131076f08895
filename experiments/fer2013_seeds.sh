#!/usr/bin/env bash
# The committed fer2013 (seven classes) results: three seeds of each family, one core per run,
# two runs side by side on the 2-core machine (conf/experiment/fer2013.yaml states the budget),
# then archive. ~85 minutes.
#   bash experiments/fer2013_seeds.sh
set -euo pipefail
export OMP_NUM_THREADS=1
q=(experiment=fer2013 callbacks.progress_bar.refresh_rate=0)
stamp=$(date +%Y-%m-%d_%H-%M-%S)
( python -m fer_bench "${q[@]}" +model=cnn seed=0,1,2 hydra.sweep.dir=experiments/runs/fer2013_${stamp}_a -m
  python -m fer_bench "${q[@]}" +model=lstm seed=0,1 hydra.sweep.dir=experiments/runs/fer2013_${stamp}_b -m
) > /tmp/fer2013_lane_a.log 2>&1 &
( python -m fer_bench "${q[@]}" +model=gan seed=0,1,2 hydra.sweep.dir=experiments/runs/fer2013_${stamp}_c -m
  python -m fer_bench "${q[@]}" +model=lstm seed=2 hydra.sweep.dir=experiments/runs/fer2013_${stamp}_d -m
) > /tmp/fer2013_lane_b.log 2>&1 &
wait
python -m fer_bench.report experiments/runs/fer2013_${stamp}_* --archive experiments/results/fer2013

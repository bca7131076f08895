#!/usr/bin/env bash
# Second round of tuning (widths and pooling), same protocol as run.sh: FER2013 seven classes,
# 3 minutes of fitting per variant on ONE core (two lanes side by side), PublicTest only.
# Each family starts from its best setting of round one (run.sh).
#   bash experiments/tuning/run_widths.sh   # ~12 minutes; then archive + table (printed at the end)
set -euo pipefail
export OMP_NUM_THREADS=1
stamp=$(date +%Y-%m-%d_%H-%M-%S)
common=(experiment=tune trainer.max_time=00:00:03:00 trainer.val_check_interval=60
        callbacks.progress_bar.refresh_rate=0)
( python -m fer_bench "${common[@]}" +model=lstm model.optimizer.lr=2e-3 model.net.bidirectional=false \
    model.net.hidden=64,256 hydra.sweep.dir=experiments/runs/${stamp}_widths_lstm -m
  python -m fer_bench "${common[@]}" +model=lstm model.optimizer.lr=2e-3 model.net.bidirectional=false \
    model.net.pooling=last hydra.sweep.dir=experiments/runs/${stamp}_widths_lstm_last -m
) > /tmp/tune_widths_lstm.log 2>&1 &
( python -m fer_bench "${common[@]}" +model=gan model.optimizer.lr=3e-4 model.feature_matching=false \
    'model.net.channels=[32,64,128],[96,128,256]' hydra.sweep.dir=experiments/runs/${stamp}_widths_gan -m
  python -m fer_bench "${common[@]}" +model=cnn model.optimizer.lr=3e-4 \
    'model.net.channels=[64,128,256]' hydra.sweep.dir=experiments/runs/${stamp}_widths_cnn -m
) > /tmp/tune_widths_gan_cnn.log 2>&1 &
wait
echo "archive and table:"
echo "  python -m fer_bench.report.tuning experiments/runs/${stamp}_widths_* --archive experiments/tuning/runs"

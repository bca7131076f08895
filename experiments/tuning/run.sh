#!/usr/bin/env bash
# The tuning sweeps recorded in experiments/tuning/README.md: FER2013 seven classes, 3 minutes of
# fitting per variant on ONE core (two lanes side by side on the 2-core machine), PublicTest
# checked every 60 batches (3,000 faces), PrivateTest never touched (experiment=tune, test=false).
#   bash experiments/tuning/run.sh      # ~25 minutes; then archive + table (printed at the end)
set -euo pipefail
export OMP_NUM_THREADS=1
common=(experiment=tune trainer.max_time=00:00:03:00 trainer.val_check_interval=60
        callbacks.progress_bar.refresh_rate=0)
python -m fer_bench "${common[@]}" +model=lstm model.optimizer.lr=1e-3,2e-3,5e-3 \
  model.net.bidirectional=true,false -m > /tmp/tune_lstm.log 2>&1 &
( python -m fer_bench "${common[@]}" +model=gan model.optimizer.lr=3e-4,1e-3 \
    model.feature_matching=true,false -m
  python -m fer_bench "${common[@]}" +model=cnn model.optimizer.lr=3e-4,1e-3 -m  # the paper's DCNN
  python -m fer_bench "${common[@]}" +model=cnn model.optimizer.lr=1e-3 \
    'model.net.channels=[32,64,128,256]' model.net.convs_per_block=2 -m
) > /tmp/tune_gan_cnn.log 2>&1 &
wait
echo "archive and table:"
echo "  python -m fer_bench.report.tuning experiments/runs/<the three sweeps> --archive experiments/tuning/runs"

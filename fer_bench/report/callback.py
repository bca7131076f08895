"""Hydra callback: at the end of a multirun, aggregate the sweep's results into reports/."""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from fer_bench.report.collect import collect
from fer_bench.report.write import print_screen, write_reports

log = logging.getLogger(__name__)


class ReportCallback(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.exists():
            return
        runs, failed = collect(sweep_dir)
        if not runs:
            log.error("no run of the sweep %s finished; no report written", sweep_dir)
            raise SystemExit(1)
        written = write_reports(runs, failed, Path(config.paths.reports_dir),
                                command=f"python -m fer_bench.report {sweep_dir}")
        print_screen(runs, failed, written)
        if failed:
            raise SystemExit(1)  # the report is written; the exit code still says it was partial

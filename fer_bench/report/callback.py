"""Hydra callback: at the end of a multirun, aggregate the sweep's results into reports/ (and,
with report.archive set, first copy them to that folder, which the report is then made from)."""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from fer_bench.report.collect import archive, collect
from fer_bench.report.write import print_screen, regenerate_command, write_reports

log = logging.getLogger(__name__)


class ReportCallback(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        report = config.get("report", {})
        if report.get("kind") == "paired" and len(report.get("baseline") or []) != 1:
            # said before any run trains, not after the sweep (SystemExit: Hydra turns a
            # callback's exceptions into warnings)
            raise SystemExit("report.kind=paired pairs the sweep's runs with one results folder: "
                             "set report.baseline=[<folder>] (e.g. "
                             "[experiments/results/label_efficiency]); it is "
                             f"{list(report.get('baseline') or [])}")

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.exists():
            return
        runs, failed = collect(sweep_dir)
        if not runs:
            log.error("no run of the sweep %s finished; no report written", sweep_dir)
            raise SystemExit(1)
        source = sweep_dir
        archive_dir = config.get("report", {}).get("archive")
        if archive_dir:  # the committed results: the report regenerates from them alone
            source = archive(runs, archive_dir)
            runs, _ = collect(source)
        report = config.get("report", {})
        if report.get("kind") == "label_efficiency":  # accuracy against labelled faces
            from fer_bench.report import label_efficiency

            folders = [str(Path(source)), *[str(Path(f)) for f in report.get("baseline") or []
                                            if Path(f).is_dir()]]
            code = label_efficiency.main([*folders, "--out", str(Path(config.paths.reports_dir))])
            if failed or code:
                raise SystemExit(1)
            return
        if report.get("kind") == "paired":  # run by run against the folder in report.baseline
            from fer_bench.report import paired

            code = paired.main([str(Path(report.baseline[0])), str(Path(source)), "--name",
                                report.name, "--out", str(Path(config.paths.reports_dir))])
            if failed or code:
                raise SystemExit(1)
            return
        superseded = []
        for folder in report.get("superseded") or []:
            if Path(folder).is_dir():
                superseded.append(folder)
            else:
                log.warning("report.superseded: no folder %s; the report goes without it", folder)
        written = write_reports(runs, failed, Path(config.paths.reports_dir),
                                regenerate_command([source], superseded), superseded)
        print_screen(runs, failed, written)
        if failed:
            raise SystemExit(1)  # the report is written; the exit code still says it was partial

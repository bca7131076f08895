"""A Hydra callback for the CLI tests: writes what the job returned (what a sweeper would see)."""

from __future__ import annotations

import json
from pathlib import Path

from hydra.experimental.callback import Callback


class JobReturn(Callback):
    def on_job_end(self, config, job_return, **kwargs) -> None:
        out = Path(config.hydra.runtime.output_dir) / "job_return.json"
        out.write_text(json.dumps(job_return.return_value))

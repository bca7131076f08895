"""`python -m fer_bench +model=cnn,gan,lstm -m`: train and test each model, then report."""

from __future__ import annotations

import logging
import re
import sys
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from fer_bench.config import CONFIG_PATH
from fer_bench.models import family_names
from fer_bench.train import ConfigMismatch, root_cause, run, write_results

log = logging.getLogger("fer_bench")
MODEL_CHOICE = re.compile(r"^\+{0,2}model=")
PAPER_FAMILIES = ("cnn", "gan", "lstm")  # the default sweep of the paper's comparison


def usage() -> str:
    models = family_names()
    sweep = ",".join(m for m in PAPER_FAMILIES if m in models) or ",".join(models)
    return (f"fer_bench: choose a model: +model={'|'.join(models)}\n"
            f"  one run:      python -m fer_bench +model={models[0]}\n"
            f"  all (sweep):  python -m fer_bench +model={sweep} -m\n"
            f"  real data:    add data=fer2013 data.root=../shared/datasets/fer2013")


@hydra.main(config_path=CONFIG_PATH, config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    """One run; returns its best validation accuracy (what a sweeper may optimise: never a test
    metric)."""
    hc = HydraConfig.get()
    out = Path(hc.runtime.output_dir)
    try:
        if "optuna" in str(hc.sweeper.get("_target_", "")) and cfg.get("test", True):
            raise ValueError("a search sweep (hydra/sweeper=optuna) optimises what the run "
                             "returns; it must select on validation only: set test=false "
                             "(experiment=tune and hparams_search=... do)")
        command = " ".join(["python -m fer_bench", *hc.overrides.task])
        return run(cfg, out, command, list(hc.overrides.task))["best_val_acc"]
    except ConfigMismatch:
        raise  # stop: never overwrite another config's results
    except Exception as e:
        # Keep the sweep going: the report names this run as failed.
        cause = root_cause(e)
        write_results(out, {"status": "failed", "model": cfg.model.get("name"),
                            "seed": cfg.get("seed"), "report_name": cfg.report.name,
                            "error": f"{type(cause).__name__}: {cause}",
                            "traceback": traceback.format_exc(),
                            "config": OmegaConf.to_container(cfg, resolve=False)})
        if hc.mode != RunMode.MULTIRUN:
            raise
        log.error("run %s failed: %s (the sweep goes on)", out.name, cause)
        return None


def cli(argv: list[str]) -> None:
    # The family is chosen by +model=... (or by an experiment's sweep: experiment=X -m);
    # without it Hydra cannot compose the config.
    sweep = any(a in ("-m", "--multirun") for a in argv) and any(
        a.startswith("experiment=") for a in argv)
    if not sweep and not any(MODEL_CHOICE.match(a) for a in argv) and not any(
            a.startswith(("--hydra-help", "--info", "--version", "--shell-completion"))
            for a in argv):
        print(usage(), file=sys.stderr)
        sys.exit(2)
    main()


if __name__ == "__main__":
    cli(sys.argv[1:])

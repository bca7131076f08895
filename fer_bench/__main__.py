"""`python -m fer_bench +model=cnn,gan,lstm -m`: train and test each model, then report."""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from fer_bench.train import run, write_results

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")
log = logging.getLogger("fer_bench")


def available_models() -> list[str]:
    return sorted(p.stem for p in (Path(CONF_DIR) / "model").glob("*.yaml"))


@hydra.main(config_path=CONF_DIR, config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    if "model" not in cfg:
        models = available_models()
        print(f"fer_bench: choose a model: +model={'|'.join(models)}\n"
              f"  one run:      python -m fer_bench +model={models[0]}\n"
              f"  all (sweep):  python -m fer_bench +model={','.join(models)} -m\n"
              f"  real data:    add data=fer2013 data.root=../shared/datasets/fer2013",
              file=sys.stderr)
        sys.exit(2)
    hc = HydraConfig.get()
    out = Path(hc.runtime.output_dir)
    try:
        command = " ".join(["python -m fer_bench", *hc.overrides.task])
        results = run(cfg, out, command, list(hc.overrides.task))
        return results["metrics"].get("acc", results.get("best_val_acc"))
    except Exception as e:
        # Keep the sweep going: the report names this run as failed.
        write_results(out, {"status": "failed", "model": cfg.model.get("name"),
                            "seed": cfg.get("seed"), "report_name": cfg.report.name,
                            "error": f"{type(e).__name__}: {e}",
                            "traceback": traceback.format_exc(),
                            "config": OmegaConf.to_container(cfg, resolve=False)})
        if hc.mode != RunMode.MULTIRUN:
            raise
        log.error("run %s failed: %s (the sweep goes on)", out.name, e)
        return None


if __name__ == "__main__":
    main()

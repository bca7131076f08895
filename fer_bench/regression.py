"""`python -m fer_bench.regression [overrides]`: the CI accuracy-regression gate.

Trains each model on a fixed small FER2013 budget (conf/regression.yaml), compares its test
accuracy with experiments/baselines/regression.json, and exits 1 when a model falls below
baseline mean - tolerance or does not beat the majority-class share of its test faces.
`update_baselines=true 'seeds=[0,1,2]'` re-measures the baselines.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from fer_bench.train import run

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")


def measure(cfg: DictConfig, out: Path) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Test accuracy (%) per model and seed, and per model the majority-class share (%) of its
    test faces: what a model that always answers the most frequent class scores."""
    accs: dict[str, list[float]] = {}
    majority: dict[str, float] = {}
    for name in cfg.models:
        for seed in cfg.seeds:
            run_cfg = OmegaConf.merge(cfg, cfg.get("per_model", {}).get(name) or {})
            OmegaConf.set_struct(run_cfg, False)
            run_cfg.model = OmegaConf.load(Path(CONF_DIR) / "model" / f"{name}.yaml")
            run_cfg.seed = int(seed)
            run_cfg.data.seed = int(seed)
            res = run(run_cfg, out / f"{name}_seed{seed}")
            accs.setdefault(name, []).append(round(100 * res["metrics"]["acc"], 2))
            support = np.asarray(res["confusion"]).sum(axis=1)
            majority[name] = max(majority.get(name, 0.0), 100 * support.max() / support.sum())
    return accs, majority


def tolerance(values: list[float], floor: float) -> float:
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return max(3 * std, floor)


def compare(measured: dict[str, list[float]], baselines: dict,
            majority: dict[str, float] | None = None) -> tuple[list[dict], bool]:
    """A model passes when it reaches baseline - tolerance and beats the majority-class share
    (a model collapsed onto one class fails even where the tolerance is wide)."""
    rows, ok = [], True
    majority = majority or {}
    for name, accs in measured.items():
        base = baselines["models"].get(name)
        if base is None:
            rows.append({"model": name, "measured": accs[0], "status": "NO BASELINE"})
            ok = False
            continue
        threshold = base["mean"] - base["tolerance"]
        chance = majority.get(name, 0.0)
        mean = float(np.mean(accs))
        passed = mean >= threshold and mean > chance
        ok &= passed
        rows.append({"model": name, "measured": mean, "baseline": base["mean"],
                     "std": base["std"], "tolerance": base["tolerance"], "threshold": threshold,
                     "majority": chance, "status": "ok" if passed else "REGRESSION"})
    return rows, ok


def print_rows(rows: list[dict]) -> None:
    print(f"{'model':<6} {'measured':>9} {'baseline':>15} {'threshold':>10} {'majority':>9}  "
          "status")
    for r in rows:
        if "baseline" in r:
            print(f"{r['model']:<6} {r['measured']:>8.2f}% {r['baseline']:>7.2f} ± "
                  f"{r['std']:<5.2f} {r['threshold']:>9.2f}% {r['majority']:>8.2f}%  "
                  f"{r['status']}")
        else:
            print(f"{r['model']:<6} {r['measured']:>8.2f}% {'-':>15} {'-':>10} {'-':>9}  "
                  f"{r['status']}")


@hydra.main(config_path=CONF_DIR, config_name="regression", version_base="1.3")
def main(cfg: DictConfig) -> None:
    out = Path(HydraConfig.get().runtime.output_dir)
    path = Path(cfg.baselines)
    if not cfg.update_baselines and not path.is_file():
        print(f"error: no baselines at {path}; measure them with python -m "
              "fer_bench.regression update_baselines=true 'seeds=[0,1,2]'", file=sys.stderr)
        sys.exit(2)
    t0 = time.perf_counter()
    measured, majority = measure(cfg, out)
    seconds = time.perf_counter() - t0
    if cfg.update_baselines:
        overrides = " ".join(HydraConfig.get().overrides.task)
        baselines = {
            "command": f"python -m fer_bench.regression {overrides}".strip(),
            "measured_on": time.strftime("%Y-%m-%d"),
            "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
            "seconds": round(seconds),
            "threads": torch.get_num_threads(),
            "budget": OmegaConf.to_container(cfg.data.limit) | {
                "max_epochs": cfg.trainer.max_epochs,
                "per_model": OmegaConf.to_container(cfg.get("per_model") or {})},
            "models": {name: {"acc": accs, "mean": round(float(np.mean(accs)), 2),
                              "std": round(float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0,
                                           2),
                              "tolerance": round(tolerance(accs, cfg.min_tolerance), 2),
                              "majority": round(majority[name], 2)}
                       for name, accs in measured.items()},
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(baselines, indent=1) + "\n")
        print(f"baselines written to {path} ({seconds:.0f} s)")
        return
    rows, ok = compare(measured, json.loads(path.read_text()), majority)
    print_rows(rows)
    print(f"regression gate: {'passed' if ok else 'FAILED'} ({seconds:.0f} s)")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()

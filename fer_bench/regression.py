"""`python -m fer_bench.regression [models=[lstm]] [seeds=[0]] [update_baselines=true] [overrides]`

The CI accuracy-regression gate. Trains each family with `experiment=regression` (fer2013's tuned
settings on a fixed small budget), compares its test accuracy with
experiments/baselines/regression.json and exits 1 when a family falls below its threshold, when a
family it was asked to check has no baseline, when it measured nothing, or when the budget differs
from the one the baselines were measured with. Other key=value arguments are Hydra overrides of
every run (`model.optimizer.lr=0` breaks every family). `update_baselines=true 'seeds=[0,1,2]'`
re-measures the baselines; by default the gate checks every family that has one.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from fer_bench import provenance
from fer_bench.config import compose_config
from fer_bench.models import family_names
from fer_bench.train import root_cause, run

GATE = {
    "models": None,  # null: every family with a baseline (update: every registered family)
    "seeds": [0],  # check: seed 0; update: the seeds whose spread sets the tolerance
    "update_baselines": False,
    "baselines": None,  # null: <paths.experiments_dir>/baselines/regression.json
    "experiment": "regression",
    "z": 2.0,  # tolerance = z x sqrt(seed std^2 + binomial standard error^2), in points
    "margin": 3.0,  # a threshold must clear the majority-class share by this many points
}
BUDGET_KEYS = ("data.limit", "trainer.max_epochs", "trainer.max_time", "trainer.max_steps",
               "trainer.limit_train_batches", "trainer.val_check_interval",
               "callbacks.early_stopping.patience", "data.batch_size")


class GateError(Exception):
    """The gate cannot give a verdict (exit 1 with this message)."""


def parse(argv: list[str]) -> tuple[DictConfig, list[str]]:
    """Gate options (the keys of GATE) and Hydra overrides for every run."""
    mine = [a for a in argv if a.split("=", 1)[0] in GATE]
    gate = OmegaConf.merge(OmegaConf.create(GATE), OmegaConf.from_dotlist(mine))
    return gate, [a for a in argv if a not in mine]


def compose_run(gate: DictConfig, model: str, seed: int, overrides: list[str]) -> DictConfig:
    return compose_config("train", [f"experiment={gate.experiment}", f"+model={model}",
                                    f"seed={seed}", *overrides])


def budget(cfg: DictConfig) -> dict:
    """What the baselines depend on besides the code: subsets, epochs, time, patience."""
    return {k: _plain(OmegaConf.select(cfg, k)) for k in BUDGET_KEYS}


def _plain(value):
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def tolerance(accs: list[float], n_test: int, z: float = 2.0) -> dict:
    """Spread a single run may show around the baseline mean (points): the seed-to-seed standard
    deviation and the binomial standard error of an accuracy on n_test faces, combined."""
    mean = float(np.mean(accs))
    std = float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0
    se = 100 * math.sqrt(mean / 100 * (1 - mean / 100) / n_test)
    return {"mean": round(mean, 2), "std": round(std, 2), "binomial_se": round(se, 2), "z": z,
            "tolerance": round(z * math.hypot(std, se), 2)}


def measure(gate: DictConfig, models: list[str], overrides: list[str], out: Path) -> dict:
    """Per family: test accuracies (%), test faces, majority-class share (%), budget; or error."""
    measured = {}
    for name in models:
        row = {"acc": [], "seeds": list(gate.seeds), "seconds": 0.0}
        t0 = time.perf_counter()
        for seed in gate.seeds:
            cfg = compose_run(gate, name, int(seed), overrides)
            row["budget"] = budget(cfg)
            try:
                res = run(cfg, out / f"{name}_seed{seed}")
            except Exception as e:  # a family that crashes fails the gate; the others still run
                cause = root_cause(e)
                row["error"] = f"{type(cause).__name__}: {cause}"
                break
            support = np.asarray(res["confusion"]).sum(axis=1)
            row["acc"].append(round(100 * res["metrics"]["acc"], 2))
            print(f"  {name} seed {seed}: test acc {row['acc'][-1]:.2f}% after "
                  f"{res['epochs_completed']} epochs ({res['stopped_by']}), "
                  f"{res['train_seconds']:.0f} s", flush=True)
            row["n_test"] = int(support.sum())
            row["majority"] = round(100 * support.max() / support.sum(), 2)
        row["seconds"] = round(time.perf_counter() - t0)
        measured[name] = row
    return measured


def baselines_from(measured: dict, gate: DictConfig, command: str,
                   seconds: float) -> tuple[dict, list[str]]:
    """The new baselines of the families whose threshold is useful, and why the others are not."""
    models, refused = {}, []
    for name, row in measured.items():
        if "error" in row:
            refused.append(f"{name} failed while measuring baselines: {row['error']}")
            continue
        tol = tolerance(row["acc"], row["n_test"], gate.z)
        threshold = round(tol["mean"] - tol["tolerance"], 2)
        if threshold < row["majority"] + gate.margin:
            refused.append(
                f"{name}: threshold {threshold:.2f}% (mean {tol['mean']:.2f} - tolerance "
                f"{tol['tolerance']:.2f}; accuracies {row['acc']}) is within {gate.margin} points "
                f"of the majority-class share {row['majority']:.2f}%: a model that learned "
                f"nothing could pass. Give {name} a larger or steadier budget "
                f"(conf/tuned/regression/{name}.yaml); its baseline is not written")
            continue
        models[name] = {"acc": row["acc"], "seeds": row["seeds"], **tol, "threshold": threshold,
                        "n_test": row["n_test"], "majority": row["majority"],
                        "budget": row["budget"], "seconds": row["seconds"]}
    prov = provenance.record()
    return {"command": command, "measured_on": time.strftime("%Y-%m-%d"),
            "commit": prov["git"]["commit"], "dirty": prov["git"]["dirty"],
            "machine": prov["machine"], "versions": prov["versions"], "seconds": round(seconds),
            "tolerance_rule": f"{gate.z} x sqrt(std over seeds^2 + binomial SE^2); the threshold"
                              f" (mean - tolerance) clears the majority share by >= {gate.margin}",
            "models": models}, refused


def merge(old: dict | None, new: dict) -> dict:
    """New measurements replace their families' entries; the others keep theirs (and say when
    and by which command they were measured)."""
    if not old:
        return new
    stamp = ("command", "measured_on", "commit", "dirty")
    kept = {name: m if "measured_by" in m else m | {"measured_by": {k: old.get(k) for k in stamp}}
            for name, m in old.get("models", {}).items() if name not in new["models"]}
    return new | {"models": kept | new["models"]}


def compare(measured: dict, baselines: dict) -> tuple[list[dict], bool]:
    """A family passes when its mean accuracy reaches its baseline threshold on the same budget."""
    rows, ok = [], True
    for name, row in measured.items():
        base = baselines["models"].get(name)
        mean = float(np.mean(row["acc"])) if row["acc"] else float("nan")
        r = {"model": name, "measured": mean, "majority": row.get("majority", float("nan"))}
        if base is None:
            r["status"] = "NO BASELINE"
        elif "error" in row:
            r |= {"status": "ERROR", "error": row["error"]}
        elif row["budget"] != base["budget"]:
            r["status"] = "BUDGET DIFFERS"
            r["error"] = f"budget {row['budget']} != baseline budget {base['budget']}"
        else:
            r["status"] = "ok" if mean >= base["threshold"] else "REGRESSION"
        if base is not None:
            r |= {k: base[k] for k in ("mean", "std", "tolerance", "threshold")}
        ok &= r["status"] == "ok"
        rows.append(r)
    return rows, ok


def print_rows(rows: list[dict]) -> None:
    print(f"{'model':<7} {'measured':>9} {'baseline':>15} {'threshold':>10} {'majority':>9}  "
          "status")
    for r in rows:
        base = (f"{r['mean']:>7.2f} ± {r['std']:<5.2f}" if "mean" in r else f"{'-':>15}")
        thr = f"{r['threshold']:>9.2f}%" if "threshold" in r else f"{'-':>10}"
        print(f"{r['model']:<7} {r['measured']:>8.2f}% {base} {thr} {r['majority']:>8.2f}%  "
              f"{r['status']}" + (f" ({r['error']})" if r.get("error") else ""))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    gate, overrides = parse(argv)
    paths = compose_config("train", [o for o in overrides if o.startswith("paths.")]).paths
    path = Path(gate.baselines or Path(paths.experiments_dir) / "baselines" / "regression.json")
    try:
        if gate.update_baselines:
            models = list(gate.models or family_names())
            baselines = None
        else:
            if not path.is_file():
                print(f"error: no baselines at {path}; measure them with python -m "
                      "fer_bench.regression update_baselines=true 'seeds=[0,1,2]'", file=sys.stderr)
                return 2
            baselines = json.loads(path.read_text())
            models = list(gate.models if gate.models is not None else baselines["models"])
            missing = [m for m in models if m not in baselines["models"]]
            if missing:
                raise GateError(f"no baseline for {missing} in {path}; measure with "
                                f"update_baselines=true 'models={missing}' 'seeds=[0,1,2]'")
        if not models or not gate.seeds:
            raise GateError(f"nothing to measure (models={models}, seeds={list(gate.seeds)}): "
                            "a gate that measured nothing cannot pass")
        stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
        out = Path(paths.experiments_dir) / "runs" / f"regression_{stamp}"
        t0 = time.perf_counter()
        measured = measure(gate, models, overrides, out)
        seconds = time.perf_counter() - t0
        if gate.update_baselines:
            command = " ".join(["python -m fer_bench.regression", *argv])
            new, refused = baselines_from(measured, gate, command, seconds)
            if new["models"]:  # what was measured well is kept, whatever failed beside it
                old = json.loads(path.read_text()) if path.is_file() else None
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(merge(old, new), indent=1) + "\n")
                print(f"baselines of {list(new['models'])} written to {path} ({seconds:.0f} s)")
            if refused:
                raise GateError("; ".join(refused))
            return 0
    except GateError as e:
        print(f"regression gate: FAILED: {e}", file=sys.stderr)
        return 1
    rows, ok = compare(measured, baselines)
    print_rows(rows)
    (out / "gate.json").write_text(json.dumps({"rows": rows, "ok": ok}, indent=1) + "\n")
    print(f"regression gate: {'passed' if ok else 'FAILED'} ({seconds:.0f} s, {out})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

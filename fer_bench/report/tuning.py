"""Tuning runs (fit + validation only) -> one table of what was tried and how it did.

    python -m fer_bench.report.tuning <sweep or results folder>... [--archive DIR] [--out FILE]

Runs of `experiment=tune` (test=false) never touch the test split; they are ranked by their
best validation (PublicTest) accuracy within each family.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from fer_bench.report.collect import archive, collect, collect_for_cli
from fer_bench.report.records import legacy_model_configs

IGNORED = ("+model=", "seed=", "experiment=", "hparams_search=", "hydra.")


def _overrides(run: dict) -> list[str]:
    return [o for o in run.get("overrides") or [] if not o.startswith(IGNORED)]


def shared_overrides(runs: list[dict]) -> list[str]:
    """Overrides every run had (the common budget), in the first run's order."""
    if len(runs) < 2:
        return []
    rest = [set(_overrides(r)) for r in runs[1:]]
    return [o for o in _overrides(runs[0]) if all(o in s for s in rest)]


def tried(run: dict, shared=()) -> str:
    """The overrides that make this variant (model, seed, experiment and shared ones aside)."""
    kept = [o for o in _overrides(run) if o not in shared]
    return " ".join(kept) or "(defaults)"


def tuning_table(runs: list[dict], shared: list[str] | None = None) -> pd.DataFrame:
    shared = shared_overrides(runs) if shared is None else shared
    rows = [{
        "family": r["model"], "variant": tried(r, shared), "seed": r["seed"],
        "val_acc": 100 * r["best_val_acc"] if r.get("best_val_acc") is not None else float("nan"),
        "kimages": r["history"][-1]["images"] / 1000 if r.get("history") else float("nan"),
        "params": r["params"],
        "seconds": r["train_seconds"], "threads": r["machine"]["threads"],
    } for r in runs]
    table = pd.DataFrame(rows).sort_values(["family", "val_acc"], ascending=[True, False])
    table["best"] = ~table.duplicated("family")
    return table.reset_index(drop=True)


def protocol_sentence(runs: list[dict]) -> str:
    """Tuning runs must never have touched the test split: checked against each record."""
    touched = [f"{r['model']} `{Path(r['run_dir']).name}`" for r in runs
               if r.get("tested") is not False or r.get("metrics") or r.get("test_passes", 0)]
    if touched:
        return "**Protocol check failed**: tested tuning runs: " + ", ".join(touched) + "."
    return (f"Protocol, checked against the {len(runs)} records: no run was tested (`tested: "
            "false`, no test metrics); each is ranked by its best PublicTest accuracy.")


def markdown(table: pd.DataFrame, failed: list[dict], command: str, shared=(),
             protocol: str = "", legacy: list[str] = ()) -> str:
    shown = table.assign(best=table["best"].map({True: "**best**", False: ""}))
    lines = [
        "# Tuning on PublicTest (validation split; the test split is never touched)", "",
        f"Regenerate: `{command}`", "", protocol, "",
        f"Every run: `{' '.join(shared) or '(no shared overrides)'}`", "",
        "`val_acc`: best PublicTest accuracy (%) over the run's validation checks; `kimages`: "
        "thousands of training faces seen by the last check; `seconds`: fitting time; "
        "`variant`: the Hydra overrides tried; `best`: the family's best `val_acc`.", "",
        shown.to_markdown(index=False, floatfmt=".1f"), "",
    ]
    if legacy:
        lines += ["These records were written before the configs were composed by Hydra alone: "
                  "their `config.model` omits the experiment's `model_overrides` (also in the "
                  "record), which every variant ran with:", "", *legacy, ""]
    if failed:
        lines += ["Failed runs:", ""]
        lines += [f"- {f.get('model')} `{f.get('run_dir')}`: {f.get('error')}" for f in failed]
    return "\n".join(lines) + "\n"


def write(runs: list[dict], failed: list[dict], out: Path, command: str) -> pd.DataFrame:
    shared = shared_overrides(runs)
    table = tuning_table(runs, shared)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out.with_suffix(".csv"), index=False, float_format="%.2f")
    out.write_text(markdown(table, failed, command, shared, protocol_sentence(runs),
                            legacy_model_configs(runs)))
    return table


class TuningCallback(Callback):
    """End of a tuning sweep: the table goes to <sweep dir>/tuning.md (archive it to commit)."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep = Path(config.hydra.sweep.dir)
        runs, failed = collect(sweep, tested=False)
        if runs:
            out = sweep / "tuning.md"
            print(write(runs, failed, out, f"python -m fer_bench.report.tuning {sweep}")
                  .to_string(index=False))
            print(f"tuning table: {out}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m fer_bench.report.tuning", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+", help="tuning sweep folders or archived results")
    p.add_argument("--archive", metavar="DIR", help="copy each run's results.json to DIR/")
    p.add_argument("--out", default="experiments/tuning/README.md", help="markdown table")
    args = p.parse_args(argv)
    runs, failed, code = collect_for_cli(args.folders, tested=False)
    if code:
        return code
    # Tuning sweeps reuse run names (0_lstm_seed0, ...): archive as <sweep>_<run>.json.
    folders = [str(archive(runs, args.archive, with_sweep=True))] if args.archive else args.folders
    command = "python -m fer_bench.report.tuning " + " ".join(folders)
    if args.out != p.get_default("out"):
        command += f" --out {args.out}"
    table = write(runs, failed, Path(args.out), command)
    print(table.to_string(index=False))
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

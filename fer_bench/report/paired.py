"""Two results folders compared run by run: does a setting change what the runs learn?

    python -m fer_bench.report.paired <folder A> <folder B> --name <report> [--out reports]

Pairs the finished runs of A and B that trained the same family at the same labelled fraction
with the same seed, and writes reports/<report>/paired.csv and paired.md: each pair's PrivateTest
accuracy in A and in B, the difference, an exact McNemar test on the same test faces (the
faces only one of the two got right), and the composed-config keys that differ between the two
(what the comparison varies: the precision, say; `report.*` and run bookkeeping aside).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import pandas as pd

from fer_bench.report.collect import collect_for_cli
from fer_bench.report.label_efficiency import fraction
from fer_bench.report.tables import paired_test
from fer_bench.train import config_differences

# Hydra's own settings (recorded by sweeps), beside what config_differences already leaves out
IGNORED = ("hydra.",)


def key(run: dict) -> tuple[str, float, int]:
    return run["model"], fraction(run), int(run["seed"])


def pairs(runs_a: list[dict], runs_b: list[dict]) -> pd.DataFrame:
    by_key = {key(r): r for r in runs_b}
    rows = []
    for a in sorted(runs_a, key=key):
        b = by_key.get(key(a))
        if b is None:
            continue
        test = paired_test(a, b)
        if test is None:
            raise ValueError(f"{a['run_dir']} and {b['run_dir']} were tested on different "
                             "faces: pair runs of the same test split")
        family, fraction_, seed = key(a)
        differs = config_differences(a.get("config", {}), b.get("config", {}), ignore=IGNORED)
        rows.append({"family": family, "labeled_fraction": fraction_, "seed": seed,
                     "acc_a": test["acc_a"], "acc_b": test["acc_b"],
                     "b_minus_a": test["acc_b"] - test["acc_a"],
                     "only_a_right": test["only_a"], "only_b_right": test["only_b"],
                     "p_value": test["p_value"], "differs": "; ".join(differs)})
    return pd.DataFrame(rows)


def over_seeds(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds of A's and B's accuracy, per family and fraction: two runs that
    differ in a setting also differ as two seeds do, so a pair's difference reads against this."""
    g = table.groupby(["family", "labeled_fraction"])
    out = pd.DataFrame({"seeds": g.size()})
    for c in ("acc_a", "acc_b"):
        out[c] = [f"{m:.2f} ± {sd:.2f}" for m, sd in zip(g[c].mean(), g[c].std(ddof=1))]
    return out.reset_index()


def write(table: pd.DataFrame, a: str, b: str, out: Path, command: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "paired.csv", index=False, float_format="%.4g")
    shown = table.drop(columns="differs").copy()
    for c, form in (("acc_a", "{:.2f}"), ("acc_b", "{:.2f}"), ("b_minus_a", "{:+.2f}")):
        shown[c] = shown[c].map(form.format)
    shown["p_value"] = shown["p_value"].map(lambda p: f"{p:.3g}")
    differs = sorted(set(table["differs"]))
    lines = [f"# Paired runs: {a} (A) vs {b} (B)", "", "Regenerate:", "", "```bash", command,
             "```", "",
             "PrivateTest accuracy (%) of the runs both folders hold (same family, labelled "
             "fraction and seed), and an exact McNemar test on the same test faces.", "",
             shown.to_markdown(index=False, disable_numparse=True), "",
             f"Mean difference B - A: {table['b_minus_a'].mean():+.2f} points over "
             f"{len(table)} pairs. Over seeds (mean ± std; two runs that differ in a setting "
             "also differ as two seeds do):", "",
             over_seeds(table).to_markdown(index=False, disable_numparse=True), "",
             "What the pairs' composed configs differ in:", ""]
    lines += [f"- {d or 'nothing'}" for d in differs]
    path = out / "paired.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--name", required=True, help="reports/<name>/")
    parser.add_argument("--out", type=Path, default=Path("reports"))
    args = parser.parse_args(argv)
    runs_a, _, code = collect_for_cli([args.a])
    if code:
        return code
    runs_b, _, code = collect_for_cli([args.b])
    if code:
        return code
    table = pairs(runs_a, runs_b)
    if table.empty:
        print(f"no run of {args.a} has a pair (family, labelled fraction, seed) in {args.b}",
              file=sys.stderr)
        return 1
    command = shlex.join(["python", "-m", "fer_bench.report.paired",
                          *(argv if argv is not None else sys.argv[1:])])
    path = write(table, str(args.a), str(args.b), args.out / args.name, command)
    print(f"{len(table)} pairs -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

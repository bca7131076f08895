"""What the results files say about how their numbers were obtained: the protocol (selected on
validation, tested once on the best-validation checkpoint), the leakage counts, and for records
written before the configs were composed by Hydra alone, what really ran."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from omegaconf import OmegaConf

from fer_bench.train import NEUTRAL_ADDITIONS, RAISABLE_CAPS, cap_raised


def protocol_problems(run: dict) -> list[str]:
    """Why a tested run breaks the protocol (empty: it keeps it). Records written before the
    protocol fields existed are judged by what they have: a checkpoint chosen on val/acc."""
    name = f"{run['model']} seed {run['seed']}"
    if run.get("tested") is False:
        return [f"{name}: not tested"]
    if "test_passes" not in run:  # a record that predates the protocol fields
        monitor = (run.get("config", {}).get("callbacks", {}).get("model_checkpoint", {})
                   .get("monitor"))
        problems = [] if run.get("checkpoint") else [f"{name}: no best checkpoint recorded"]
        if monitor is None or not str(monitor).startswith("val/"):
            problems.append(f"{name}: checkpoint chosen on {monitor!r}, not on validation")
        return problems
    sel = run.get("selection") or {}
    problems = []
    replaced = run.get("replaced_tests") or []
    if run["test_passes"] != 1 + len(replaced):
        problems.append(f"{name}: {run['test_passes']} test passes")
    problems += [f"{name}: an earlier test replaced without a raised cap ({t.get('why')!r})"
                 for t in replaced if not continued_under_a_raised_cap(t)]
    if sel.get("split") != "val" or not str(sel.get("metric", "")).startswith("val/"):
        problems.append(f"{name}: selected on {sel.get('split')}/{sel.get('metric')}")
    if not sel.get("checkpoint") or run.get("tested_checkpoint") != sel.get("checkpoint"):
        problems.append(f"{name}: tested {run.get('tested_checkpoint')}, not the best-validation "
                        f"checkpoint {sel.get('checkpoint')}")
    return problems


def continued_under_a_raised_cap(test: dict) -> bool:
    """Whether a replaced test pass was stopped by a cap that was then raised: its `raised`
    caps ({key: [before, after]}; records written before that field say so in `why` as
    `key: before -> after`) are raisable ones, each set higher (or removed), one of them the
    reason the run had stopped."""
    caps = test.get("raised")
    if caps is None:
        caps = {k: [a, None if b == "None" else b] for k, a, b in re.findall(
            r"([\w.]+): (\S+) -> ([^;)\s]+)", str(test.get("why", "")))}
    return (bool(caps) and all(k in RAISABLE_CAPS and cap_raised(*v) for k, v in caps.items())
            and test.get("stopped_by") in {RAISABLE_CAPS[k] for k in caps})


def hardware(run: dict) -> str:
    """Where a run fitted: the GPU when it trained on one, else `CPU, <n> thread(s)`. Fitting
    seconds are only comparable between runs with the same answer."""
    m = run.get("machine") or {}
    if str(m.get("accelerator", "")).startswith("cuda") and m.get("gpu"):
        return m["gpu"]
    return f"CPU, {m.get('threads', '?')} thread{'s' if m.get('threads') != 1 else ''}"


def precision(run: dict) -> str:
    """What a run trained in: its config's precision (a record from before the setting: the
    float32 it ran in); each fitting session's, in order, where a resumed run changed it."""
    configured = (((run.get("config") or {}).get("trainer") or {}).get("precision")
                  or NEUTRAL_ADDITIONS["trainer.precision"])
    sessions = list(dict.fromkeys(s["precision"] for s in run.get("fit_sessions") or []
                                  if s.get("precision")))
    return " then ".join(sessions) if len(sessions) > 1 else configured


def runs_lines(runs: list[dict], columns: dict[str, Callable[[dict], str]] | None = None,
               order: Callable[[dict], tuple] = lambda r: (r["model"], r["seed"])) -> list[str]:
    """The `## Runs` section: a row per run (in `order`) with its epochs, what stopped it, its
    fitting seconds, where and in what precision it ran, its commit and its command; `columns`
    ({header: value of a run}) come after the seed."""
    columns = columns or {}
    headers = ["model", "seed", *columns, "epochs", "stopped by", "train seconds", "machine",
               "precision", "commit", "run"]
    lines = ["## Runs", "", "| " + " | ".join(headers) + " |", "|---" * len(headers) + "|"]
    for r in sorted(runs, key=order):
        m = r.get("machine", {})
        git = r.get("git") or {}
        commit = (git["commit"][:9] + (" (dirty)" if git.get("dirty") else "")
                  if git.get("commit") else "not recorded")
        cells = [r["model"], r["seed"], *(value(r) for value in columns.values()),
                 r.get("epochs_completed", r["epochs"]), r.get("stopped_by", "not recorded"),
                 f"{r['train_seconds']:.0f}", f"{hardware(r)} ({m.get('cpu', '?')})",
                 precision(r), commit, f"`{r.get('command') or Path(r['run_dir']).name}`"]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return lines + [""]


def hardware_counts(runs: list[dict]) -> str:
    """`CPU, 1 thread ×2; NVIDIA H200 ×1`: where a family's runs fitted."""
    kinds = [hardware(r) for r in runs]
    return "; ".join(f"{k} ×{kinds.count(k)}" for k in dict.fromkeys(kinds))


def protocol_sentence(runs: list[dict]) -> str:
    problems = [p for r in runs for p in protocol_problems(r)]
    legacy = sum("test_passes" not in r for r in runs)
    if problems:
        return ("**Protocol check failed** against the records: " + "; ".join(problems) + ".")
    text = (f"Protocol, checked against the {len(runs)} records: every run was selected on the "
            "validation split (val/acc) and tested on its best-validation checkpoint")
    if legacy == len(runs):
        return text + (" (these records predate the test-pass count; the code that wrote them "
                       "ran the test split once per run).")
    if legacy:
        return text + (f", once ({len(runs) - legacy} records count their test passes; {legacy} "
                       "predate that field, written by code that tested once per run).")
    if any(r.get("replaced_tests") for r in runs):
        return text + (", once, except runs a time cap had stopped that continued when the cap "
                       "was raised, and were tested again (the decision did not look at the "
                       "test figure; the earlier figures are listed under Replaced test passes).")
    return text + ", exactly once."


def run_name(run: dict) -> str:
    return f"{run['model']} seed {run['seed']}"


def replaced_tests_lines(runs: list[dict], name: Callable[[dict], str] = run_name) -> list[str]:
    """The test passes that runs replaced by continuing under a raised cap: every figure shown,
    each run called name(run)."""
    rows = [(r, t) for r in runs for t in r.get("replaced_tests") or []]
    if not rows:
        return []
    lines = ["## Replaced test passes", "",
             "Runs stopped by a cap that was then raised continued from their last checkpoint "
             "and were tested again; their earlier PrivateTest figures, replaced:", "",
             "| run | earlier test acc | ten views | epochs | stopped by | fitting min | now "
             "| why |",
             "|---|---|---|---|---|---|---|---|"]
    for r, t in rows:
        m = t["metrics"]
        tta = f"{100 * m['acc_tta']:.1f}" if "acc_tta" in m else "-"
        lines.append(f"| {name(r)} | {100 * m['acc']:.1f} | {tta} | "
                     f"{float(t.get('epochs_completed') or t.get('epochs')):.1f} | "
                     f"{t.get('stopped_by')} | "
                     f"{(t.get('train_seconds') or 0) / 60:.0f} | {100 * r['metrics']['acc']:.1f}"
                     f" | {t.get('why')} |")
    return lines + [""]


def leakage_sentence(runs: list[dict]) -> str:
    r = runs[0]
    n = len(r["predictions"]["target"])
    own = len(r.get("test_duplicates_of_train", []))
    any_ = r.get("test_duplicates_of_any_train")
    classes = r["data"]["classes"]
    text = (f"Leakage audit: {own} of the {n} test faces are pixel-identical to a training face "
            f"of the selected classes ({', '.join(classes)}; the faces the models trained on); ")
    if any_ is None:
        return text + ("the count against any training face, whatever its class, is not in "
                       "these records. `acc_without_duplicates` leaves out the first set.")
    return text + (f"{len(any_)} duplicate a face of the whole training split, any class. "
                   "`acc_without_duplicates` leaves out the first set.")


class MixedRunsError(ValueError):
    """Runs that one column would pool were trained differently."""


def label_counts(run: dict) -> dict:
    """A FER+ run's recorded label counts (its `label_mode`, counts per split, single-rater
    agreement); empty for other data."""
    return run["data"].get("label_counts") or {}


def label_modes(runs: list[dict]) -> dict[str, str]:
    """{family: the FER+ label mode its runs trained under} (empty for other data). A family
    whose seeds trained under two modes is an error: they would be pooled into one column."""
    seeds: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        mode = label_counts(r).get("label_mode")
        if mode:
            seeds[r["model"]][mode].append(r["seed"])
    mixed = {m: dict(by_mode) for m, by_mode in seeds.items() if len(by_mode) > 1}
    if mixed:
        raise MixedRunsError(
            f"runs of one family under different data.label_mode would be pooled into one "
            f"column ({mixed}: mode -> seeds); give one mode's runs their own report.name "
            "(say report.name=ferplus_probability) or report the folders separately")
    return {m: next(iter(by_mode)) for m, by_mode in seeds.items()}


def rater_sentence(runs: list[dict]) -> list[str]:
    """For FER+ data: which label mode produced each column, and how often one rater agrees
    with the label the models are tested on."""
    modes = label_modes(runs)
    agreement = {}  # by mode: plurality labels a larger test set than majority and probability
    for counts in map(label_counts, runs):
        value = (counts.get("single_rater_agreement") or {}).get("test")
        if value is not None:
            agreement.setdefault(counts["label_mode"], value)
    if not agreement:
        return []
    if len(set(modes.values())) == 1:
        labels = f"Labels: FER+ votes, `data.label_mode={next(iter(modes.values()))}`."
    else:
        labels = "Labels: FER+ votes; each column's `data.label_mode`: " + ", ".join(
            f"{m.upper()} `{mode}`" for m, mode in sorted(modes.items())) + "."
    rates = sorted({round(100 * a, 1) for a in agreement.values()})
    if len(rates) == 1:
        rater = f"{rates[0]:.1f}% of the time on average"
    else:
        rater = "on average " + ", ".join(f"{100 * a:.1f}% (`{mode}` test labels)"
                                          for mode, a in sorted(agreement.items()))
    return [f"{labels} A single rater agrees with a test face's label {rater} (the share of "
            "its ten votes the label got): what one person scores against the label the models "
            "are tested on.", ""]


def legacy_model_configs(runs: list[dict]) -> list[str]:
    """For records whose `config.model` predates Hydra-native composition (an experiment's
    `model_overrides` were merged after recording): what really ran, one line per model."""
    lines, seen = [], set()
    for r in runs:
        cfg = r.get("config", {})
        overrides = cfg.get("model_overrides")
        if not overrides or r["model"] in seen:
            continue
        seen.add(r["model"])
        recorded = cfg.get("model", {})
        ran = OmegaConf.to_container(OmegaConf.merge(
            recorded, overrides.get("all") or {}, overrides.get(r["model"]) or {}))
        changed = [f"{k}={v}" for k, v in _flat(ran).items() if _flat(recorded).get(k) != v]
        if changed:
            lines.append(f"- {r['model']}: recorded `model` config, but ran with "
                         + ", ".join(f"`{c}`" for c in changed))
    return lines


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out |= _flat(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out

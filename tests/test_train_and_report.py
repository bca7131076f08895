"""One real (tiny) run in-process, its results file and checkpoint, and the report built from it."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pandas as pd
import pytest
import torch

from fer_bench.config import compose_config
from fer_bench.models import family_names
from fer_bench.predict import load_model
from fer_bench.report import collect, write_report
from fer_bench.report.stats import mcnemar, wilson
from fer_bench.report.tables import recognition_rates
from fer_bench.train import NoBestCheckpoint, run
from tests.conftest import REPO, regenerate_committed
from tests.test_readme_numbers import first_table

FAMILIES = family_names()


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """Every registered family trained for two batches on synthetic faces; their run folders."""
    root = tmp_path_factory.mktemp("runs")
    outs = []
    for model in FAMILIES:
        cfg = compose_config("train", [f"+model={model}", "debug=fast", f"paths.root_dir={root}"])
        outs.append(root / "sweep" / model)
        run(cfg, outs[-1])
    return root / "sweep", outs


def test_results_file_has_what_the_report_needs(tiny_runs):
    _, outs = tiny_runs
    res = json.loads((outs[0] / "results.json").read_text())
    assert res["status"] == "ok" and res["model"] == "cnn" and res["seed"] == 0
    assert set(res["per_class_recall"]) == {"angry", "sad", "happy", "fear", "neutral"}
    assert {"acc", "acc_tta", "f1_macro", "balanced_acc"} <= set(res["metrics"])
    cm = np.asarray(res["confusion"])
    assert cm.shape == (5, 5) and cm.sum() == 100
    pred, target = np.asarray(res["predictions"]["pred"]), np.asarray(res["predictions"]["target"])
    assert res["metrics"]["acc"] == pytest.approx((pred == target).mean(), abs=1e-6)
    assert res["params"] > 0 and res["train_seconds"] > 0 and res["eval_images_per_second"] > 0
    # debug=fast: one epoch of two batches (100 of 200 faces), validated once at its end
    assert [(h["epoch"], h["images"]) for h in res["history"]] == [(0, 100)]
    assert res["epochs_completed"] == 0.5 and res["stopped_by"] == "max_epochs"
    assert res["history"][0]["val_acc"] == pytest.approx(res["best_val_acc"], abs=1e-4)
    # tested once, on the checkpoint chosen on validation
    assert res["test_passes"] == 1 and res["selection"]["split"] == "val"
    assert res["tested_checkpoint"] == res["selection"]["checkpoint"] == res["checkpoint"]


def test_results_record_what_ran_and_where(tiny_runs):
    import platform

    import pytorch_lightning
    import torch

    _, outs = tiny_runs
    res = json.loads((outs[0] / "results.json").read_text())
    assert res["versions"]["torch"] == torch.__version__
    assert res["versions"]["pytorch-lightning"] == pytorch_lightning.__version__
    assert res["versions"]["python"] == platform.python_version()
    git = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                         text=True).stdout.strip()
    assert res["git"]["commit"] == git and isinstance(res["git"]["dirty"], bool)
    cpu = res["machine"]["cpu"]
    assert cpu and cpu != platform.machine()  # the model name, not the architecture
    assert res["machine"]["threads"] == torch.get_num_threads()


@pytest.mark.parametrize("i", range(len(FAMILIES)))
def test_every_family_checkpoint_loads_in_predict(tiny_runs, i):
    """weights_only=True; the model predict rebuilds gives the tested model's outputs; the
    schedule's and the optimizers' states travel in the checkpoint."""
    _, outs = tiny_runs
    path = outs[i] / "checkpoints" / "best.ckpt"
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["fer_bench"]["family"] == FAMILIES[i] and ckpt["optimizer_states"]
    res = json.loads((outs[i] / "results.json").read_text())
    model = load_model(path)
    assert type(model.net).__name__ == res["config"]["model"]["net"]["_target_"].rsplit(".")[-1]
    x = torch.randn(3, 1, 48, 48)
    assert torch.allclose(model.probabilities(x).sum(-1), torch.ones(3), atol=1e-5)
    assert model.hparams.net == res["config"]["model"]["net"]  # what ran is what loads


def test_a_run_without_a_best_checkpoint_fails_instead_of_testing_last_weights(compose_cfg,
                                                                               tmp_path):
    cfg = compose_cfg("+model=cnn", "debug=fast", "+trainer.limit_val_batches=0",
                      "~callbacks.early_stopping")
    with pytest.raises(NoBestCheckpoint, match="without a best-validation checkpoint"):
        run(cfg, tmp_path / "run")


def test_report_from_runs(tiny_runs, tmp_path):
    sweep, _ = tiny_runs
    runs, failed = collect(sweep)
    assert sorted(r["model"] for r in runs) == sorted(FAMILIES) and not failed
    out = write_report(runs, failed, tmp_path / "synthetic")
    for name in ("recognition_rates.csv", "recognition_rates.md", "recognition_rates.png",
                 "recognition_rates.svg", "summary.csv", "learning_curves.png",
                 "time_to_accuracy.png", *(f"confusion_{m}.png" for m in FAMILIES)):
        assert (out / name).stat().st_size > 0, name
    table = pd.read_csv(out / "recognition_rates.csv", index_col=0)
    assert list(table.index) == ["Angry", "Sad", "Happy", "Fear", "Neutral", "Overall accuracy"]
    cnn = runs[0]
    assert table.at["Happy", "cnn"] == pytest.approx(100 * cnn["per_class_recall"]["happy"],
                                                     abs=0.051)
    assert table.at["Overall accuracy", "cnn"] == pytest.approx(100 * cnn["metrics"]["acc"],
                                                                abs=0.051)
    assert [c for c in table.columns if not c.endswith("_std")] == FAMILIES  # registry order
    md = (out / "recognition_rates.md").read_text()
    assert "| Overall accuracy |" in md and "ten views" in md
    assert f"checked against the {len(FAMILIES)} records" in md and "exactly once" in md
    assert "![time to accuracy](time_to_accuracy.png)" in md
    # one seed: the summary's interval is the bootstrap over the test faces of that seed
    summary = pd.read_csv(out / "summary.csv", index_col=0)
    assert summary.at["cnn", "acc_ci_low"] < 100 * cnn["metrics"]["acc"] < summary.at[
        "cnn", "acc_ci_high"]


def test_the_protocol_sentence_fails_on_a_record_that_broke_it(tiny_runs):
    from fer_bench.report.records import protocol_sentence

    sweep, _ = tiny_runs
    runs, _ = collect(sweep)
    runs[0] = runs[0] | {"test_passes": 2}
    runs[1] = runs[1] | {"tested_checkpoint": "last.ckpt"}
    text = protocol_sentence(runs)
    assert text.startswith("**Protocol check failed**")
    assert "2 test passes" in text and "last.ckpt" in text


@pytest.mark.parametrize("replaced, kept", [
    ({"raised": {"trainer.max_time": ["00:04:00:00", "00:05:00:00"]}}, True),
    ({"raised": {"trainer.max_time": ["00:04:00:00", None]}}, True),  # the cap removed
    ({"raised": {"trainer.max_time": ["00:05:00:00", "00:04:00:00"]}}, False),  # lowered
    ({"raised": {"trainer.max_epochs": [40, 60]}}, False),  # not a cap that may be raised
    ({"raised": {}}, False),
    # records written before `raised`: the caps are read from `why`, never its wording alone
    ({"why": "stopped by its cap, which was then raised (trainer.max_time: 00:04:00:00 -> "
             "00:05:00:00): the run continued"}, True),
    ({"why": "the cap was raised, trust me"}, False),
])
def test_a_replaced_test_counts_only_when_the_cap_that_stopped_it_was_raised(replaced, kept):
    from fer_bench.report.records import protocol_problems

    run = {"model": "cnn", "seed": 0, "test_passes": 2, "tested_checkpoint": "best.ckpt",
           "selection": {"split": "val", "metric": "val/acc", "checkpoint": "best.ckpt"},
           "replaced_tests": [{"stopped_by": "max_time", **replaced}]}
    assert (protocol_problems(run) == []) is kept
    # a test pass that early stopping ended was final: continuing it is not a raised cap
    run["replaced_tests"][0]["stopped_by"] = "early_stopping"
    assert protocol_problems(run) != []


@pytest.mark.parametrize("name", sorted(p.parent.name for p in (REPO / "reports")
                                        .glob("*/recognition_rates.md")))
def test_committed_reports_regenerate_byte_for_byte(name, tmp_path, monkeypatch):
    """reports/<name>/*.csv are what the command written in reports/<name>/recognition_rates.md
    writes from committed results files (and the superseded ones it names)."""
    same = regenerate_committed(REPO / "reports" / name, "recognition_rates.md", "fer_bench.report",
                                tmp_path, monkeypatch,
                                sources=("experiments/results/", "experiments/superseded/"))
    assert all(same.values()), same


def test_failed_runs_are_named_not_fatal(tiny_runs, tmp_path):
    sweep, _ = tiny_runs
    bad = tmp_path / "sweep_with_failure"
    bad.mkdir()
    for f in sweep.rglob("results.json"):
        (bad / f.parent.name).mkdir()
        (bad / f.parent.name / "results.json").write_text(f.read_text())
    (bad / "broken").mkdir()
    (bad / "broken" / "results.json").write_text(json.dumps(
        {"status": "failed", "model": "gan", "seed": 0, "report_name": "synthetic",
         "error": "RuntimeError: boom"}))
    runs, failed = collect(bad)
    assert len(runs) == len(FAMILIES) and [f["model"] for f in failed] == ["gan"]
    md = (write_report(runs, failed, tmp_path / "r") / "recognition_rates.md").read_text()
    assert "Failed runs" in md and "RuntimeError: boom" in md


def test_mean_and_std_over_seeds():
    def fake(seed, happy, acc):
        return {"model": "cnn", "seed": seed, "data": {"classes": ["happy", "sad"]},
                "per_class_recall": {"happy": happy, "sad": 0.5}, "metrics": {"acc": acc}}

    rates = recognition_rates([fake(0, 0.8, 0.6), fake(1, 0.6, 0.7)])
    assert rates.at["Happy", "cnn"] == pytest.approx(70.0)
    assert rates.at["Happy", "cnn_std"] == pytest.approx(100 * np.std([0.8, 0.6], ddof=1))
    assert rates.at["Overall accuracy", "cnn"] == pytest.approx(65.0)


def test_wilson_and_mcnemar_known_values():
    lo, hi = wilson(0.5, 100)
    assert lo == pytest.approx(0.4038, abs=1e-3) and hi == pytest.approx(0.5962, abs=1e-3)
    # 10 discordant pairs all one way: p = 2 * 0.5**10
    res = mcnemar([True] * 10 + [False] * 5, [False] * 10 + [False] * 5)
    assert res["only_a"] == 10 and res["only_b"] == 0
    assert res["p_value"] == pytest.approx(2 * 0.5**10)
    assert mcnemar([True, False], [True, False])["p_value"] == 1.0


def test_seed_and_face_interval_covers_both_sources_of_variation():
    from fer_bench.report.stats import seeds_and_faces_interval

    rng = np.random.default_rng(0)
    faces = 2000
    same = [rng.random(faces) < 0.6] * 3  # three identical seeds: the faces' variation only
    lo1, hi1 = seeds_and_faces_interval(same)
    assert lo1 < 0.6 < hi1 and hi1 - lo1 < 0.06
    spread = [rng.random(faces) < p for p in (0.50, 0.60, 0.70)]  # seeds far apart
    lo2, hi2 = seeds_and_faces_interval(spread)
    assert hi2 - lo2 > 2 * (hi1 - lo1)  # wider than test sampling alone
    assert lo2 < np.mean([s.mean() for s in spread]) < hi2
    assert seeds_and_faces_interval(spread) == (lo2, hi2)  # seeded: reproducible


def test_a_report_names_the_results_it_replaced_with_a_budget_ladder(tiny_runs, tmp_path):
    """--superseded: the earlier figures, why they went (the folder's README), and the ladder of
    test accuracy per budget beside the current runs' validation accuracy at 15 and 60 min."""
    from fer_bench.report.__main__ import main

    sweep, outs = tiny_runs
    earlier = tmp_path / "superseded" / "synthetic_short"
    earlier.mkdir(parents=True)
    for out in outs[:2]:  # two families had earlier results, with a budget of 90 s
        r = json.loads((out / "results.json").read_text())
        r["config"]["trainer"]["max_time"] = "00:00:01:30"
        r["metrics"]["acc"] = 0.25
        (earlier / f"{r['model']}.json").write_text(json.dumps(r))
    assert main([str(sweep), "--superseded", str(earlier), "--out", str(tmp_path)]) == 2
    (earlier / "README.md").write_text("# Short runs\n\nToo short to\nconverge.\n\nMore.\n")
    assert main([str(sweep), "--superseded", str(earlier), "--out", str(tmp_path)]) == 0
    report = tmp_path / "synthetic"
    ladder = pd.read_csv(report / "budget_ladder.csv", index_col=0, dtype=str)
    first, second = (json.loads((o / "results.json").read_text())["model"] for o in outs[:2])
    assert ladder.at[first.upper(), "PrivateTest, 1.5-min budget"] == "25.0 (1)"
    assert ladder.at[FAMILIES[-1].upper(), "PrivateTest, 1.5-min budget"] == "-"
    now = json.loads((outs[0] / "results.json").read_text())
    assert ladder.at[first.upper(), "PrivateTest, now"] == f"{100 * now['metrics']['acc']:.1f} (1)"
    # a 2-batch run finished within 15 minutes: its final best validation accuracy counts
    assert ladder.at[first.upper(), "PublicTest at 15 min"] == f"{100 * now['best_val_acc']:.1f}"
    md = (report / "recognition_rates.md").read_text()
    assert "replaced: Too short to converge." in md and str(earlier) in md
    assert f"--superseded {earlier}" in md
    assert "Not run yet" not in md  # every family of the earlier results has runs now


def test_a_sweeps_regenerate_command_spells_paths_as_typed():
    """A config's `${paths.experiments_dir}` is `./experiments`: the sweep's report must still
    give the command README and the reports index give (and the reports index test compares)."""
    from fer_bench.report.write import regenerate_command

    assert regenerate_command(["./experiments/results/paper5"],
                              ["./experiments/superseded/paper5_8min"]) == (
        "python -m fer_bench.report experiments/results/paper5"
        " --superseded experiments/superseded/paper5_8min")


def test_a_report_says_which_replaced_families_have_not_run_yet(tiny_runs, tmp_path):
    """An experiment replaced family by family (paper5: the LSTM and the CNN converged, the GAN
    not yet): the report names the family that has no runs, not a silent missing column."""
    from fer_bench.report.__main__ import main

    _, outs = tiny_runs
    earlier, now = tmp_path / "superseded" / "short", tmp_path / "now"
    earlier.mkdir(parents=True)
    now.mkdir()
    (earlier / "README.md").write_text("# Short runs\n\nToo short.\n")
    models = []
    for i, out in enumerate(outs):
        r = json.loads((out / "results.json").read_text())
        models.append(r["model"])
        (earlier / f"{r['model']}.json").write_text(json.dumps(r))
        if i < len(outs) - 1:  # the last family has no current run
            (now / f"{r['model']}.json").write_text(json.dumps(r))
    assert main([str(now), "--superseded", str(earlier), "--out", str(tmp_path / "r")]) == 0
    md = (tmp_path / "r" / "synthetic" / "recognition_rates.md").read_text()
    assert f"Not run yet: {models[-1].upper()} (" in md
    assert all(f"Not run yet: {m.upper()}" not in md for m in models[:-1])


def test_best_by_reads_the_history_up_to_a_time():
    from fer_bench.report.ladder import best_by

    history = [{"seconds": 60, "val_acc": 0.3}, {"seconds": 900, "val_acc": 0.5},
               {"seconds": 1000, "val_acc": 0.4}, {"seconds": 4000, "val_acc": 0.6}]
    assert best_by(history, 30) is None
    assert best_by(history, 900) == 0.5 and best_by(history, 3600) == 0.5
    assert best_by(history, 7200) == 0.6


def test_paper_table3_cells_sit_beside_the_measured_ones(tiny_runs):
    """report.paper given per expression (the paper's Table 3) is compared cell by cell; given as
    one range, against the measured range."""
    from fer_bench.report import tables
    from fer_bench.report.write import paper_vs_measured

    runs, _ = collect(tiny_runs[0])
    rates = tables.recognition_rates(runs)
    cells = paper_vs_measured({"cnn": {"angry": 96.1, "happy": 97.0}}, rates, runs)
    assert cells.at["Angry", "CNN paper"] == "96.1" and cells.at["Sad", "CNN paper"] == "-"
    assert cells.at["Happy", "CNN measured"] == f"{rates.at['Happy', 'cnn']:.1f}"
    assert (cells[[c for c in cells if c.endswith("paper") and "CNN" not in c]] == "-").all().all()
    ranges = paper_vs_measured({"cnn": "95-97"}, rates, runs)
    assert ranges.at["CNN", "paper: rate per expression (%)"] == "95-97"


def test_per_expression_intervals_bootstrap_that_expressions_faces_over_seeds():
    from fer_bench.report.stats import seeds_and_faces_interval
    from fer_bench.report.tables import accuracy_interval, rates_with_ci

    rng = np.random.default_rng(0)
    target = np.repeat([0, 1], [300, 100])
    runs = []
    for seed, p_right in enumerate((0.9, 0.5)):  # class 0 is easy for seed 0 only
        pred = np.where(rng.random(400) < p_right, target, 1 - target)
        pred[target == 1] = 1  # class 1 always right
        runs.append({"model": "cnn", "seed": seed,
                     "predictions": {"target": target.tolist(), "pred": pred.tolist()},
                     "data": {"classes": ["angry", "happy"]},
                     "per_class_recall": {"angry": float((pred[:300] == 0).mean()), "happy": 1.0},
                     "metrics": {"acc": float((pred == target).mean())},
                     "confusion": [[300, 0], [0, 100]]})
    lo, hi = accuracy_interval(runs, 0)
    assert (lo, hi) == seeds_and_faces_interval([(np.asarray(r["predictions"]["pred"]) == target)
                                                 [target == 0] for r in runs])
    assert hi - lo > 0.3  # the seeds disagree by 40 points: the interval says so
    assert accuracy_interval(runs, 1) == (1.0, 1.0)
    cells = rates_with_ci(runs)
    assert cells.at["Angry", "CNN"].endswith(f"[{100 * lo:.1f}, {100 * hi:.1f}]")


def test_a_regenerated_report_drops_what_its_runs_no_longer_have(tiny_runs, tmp_path):
    sweep, outs = tiny_runs
    runs, _ = collect(sweep)
    report = tmp_path / "report"
    write_report(runs, [], report)
    assert (report / "confusion_gan.png").is_file() and (report / "mcnemar.csv").is_file()
    (report / "notes.txt").write_text("mine")
    write_report([r for r in runs if r["model"] == "cnn"], [], report)
    assert not (report / "confusion_gan.png").exists()  # the GAN is no longer in this report
    assert not (report / "mcnemar.csv").exists()  # one model: no pairs
    assert (report / "confusion_cnn.png").is_file() and (report / "notes.txt").is_file()


def test_minutes_to_accuracy_counts_the_first_check_at_each_level_and_the_seeds_that_got_there():
    from fer_bench.report.tables import minutes_to_accuracy

    def run(seed, accs):
        return {"model": "cnn", "seed": seed,
                "history": [{"seconds": 60.0 * (i + 1), "val_acc": a} for i, a in enumerate(accs)]}

    table = minutes_to_accuracy([run(0, [0.5, 0.61, 0.66, 0.64]), run(1, [0.62, 0.63, 0.64])])
    assert table.loc["CNN"].to_dict() == {"60% (min)": "1.5 (2/2)", "65% (min)": "3.0 (1/2)"}
    assert minutes_to_accuracy([run(0, [0.5])]).loc["CNN", "65% (min)"] == "not reached (0/1)"


def test_time_figures_are_never_averaged_across_hardware(tmp_path):
    """A family whose seeds fitted on a CPU and on a GPU gets a time row per hardware, a ladder
    whose minute columns count the earlier budgets' hardware only and fitting minutes per
    hardware, and a time chart line per hardware."""
    from fer_bench.report import charts, ladder, records, tables

    cpu = {"accelerator": "cpu", "cpu": "Xeon", "threads": 1}
    gpu = {"accelerator": "cuda:0", "cpu": "Xeon", "threads": 1, "gpu": "NVIDIA H200"}

    def run(seed, machine, minutes_per_check, accs):
        return {"model": "cnn", "seed": seed, "machine": machine, "train_seconds": 600.0,
                "data": {"sizes": {"train": 100}},
                "metrics": {"acc": 0.6}, "stopped_by": "early_stopping",
                "history": [{"seconds": 60.0 * minutes_per_check * (i + 1), "val_acc": a,
                             "images": 100 * (i + 1)} for i, a in enumerate(accs)]}

    runs = [run(0, cpu, 20, [0.55, 0.61, 0.66]), run(1, cpu, 20, [0.62, 0.64, 0.66]),
            run(2, gpu, 0.5, [0.58, 0.66])]
    assert records.hardware(runs[0]) == "CPU, 1 thread" and records.hardware(runs[2]) == \
        "NVIDIA H200"
    assert records.hardware_counts(runs) == "CPU, 1 thread ×2; NVIDIA H200 ×1"
    table = tables.minutes_to_accuracy(runs)
    assert table.loc["CNN (CPU, 1 thread)", "65% (min)"] == "60 (2/2)"
    assert table.loc["CNN (NVIDIA H200)", "65% (min)"] == "1.0 (1/1)"
    earlier = [("15-min budget", tmp_path, [run(9, cpu, 5, [0.4])])]
    rows = ladder.budget_ladder(runs, earlier)
    assert rows.at["CNN", "PublicTest at 15 min"] == "-"  # no CPU check before 20 min
    assert rows.at["CNN", "PublicTest at 60 min"] == "66.0"  # the CPU seeds' best by 60 min
    assert rows.at["CNN", "fitting minutes"] == "10 (CPU, 1 thread, 2); 10 (NVIDIA H200, 1)"
    assert charts.time_to_accuracy(runs, "t", tmp_path / "speed").is_file()


def test_the_runs_table_says_what_precision_each_run_trained_in():
    """Where the machine chooses the precision, families of one report can train in different
    ones: each run's is shown, float32 for records from before the setting, and each fitting
    session's where a resumed run changed it."""
    from fer_bench.report import records

    def run(precision=None, sessions=()):
        return {"config": {"trainer": {} if precision is None else {"precision": precision}},
                "fit_sessions": [{"precision": p} for p in sessions]}

    assert records.precision({"model": "cnn"}) == records.precision(run()) == "32-true"
    assert records.precision(run("bf16-mixed", ["bf16-mixed", "bf16-mixed"])) == "bf16-mixed"
    assert records.precision(run("bf16-mixed", ["32-true", "bf16-mixed"])) == \
        "32-true then bf16-mixed"
    page = (REPO / "reports" / "ferplus" / "recognition_rates.md").read_text()
    assert "| machine | precision | commit |" in page
    # Each committed run's row shows its own record's precision; the CNN's were bf16 and the
    # LSTM's float32, so a report printing one precision for all would fail here.
    header, *rows = first_table(page.split("## Runs", 1)[1])
    model, seed, prec = (header.index(c) for c in ("model", "seed", "precision"))
    shown = {(row[model], int(row[seed])): row[prec] for row in rows}
    expected = {}
    for path in sorted((REPO / "experiments" / "results" / "ferplus").glob("*.json")):
        record = json.loads(path.read_text())
        expected[(record["model"], record["seed"])] = records.precision(record)
    assert shown == expected
    assert {"bf16-mixed", "32-true"} <= set(shown.values())


def test_a_ferplus_report_names_its_own_validation_split():
    """FER+ selects on FER2013Valid, not FER2013's PublicTest: the speed chart and tables say so."""
    page = (REPO / "reports" / "ferplus" / "recognition_rates.md").read_text()
    assert "The best FER2013Valid (FER+ labels) accuracy each family had reached" in page
    assert "Fitting minutes until FER2013Valid (FER+ labels) accuracy" in page
    assert "PublicTest" not in page

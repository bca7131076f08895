"""python -m fer_bench.progress: where a sweep's runs stand, read from their folders."""

from __future__ import annotations

import json

from fer_bench.progress import main, progress_table, run_caps

from .test_cli import TINY, fer_bench


def test_a_finished_run_reads_as_tested_from_its_results(trained_ckpt, capsys):
    run = trained_ckpt.parent.parent  # the real Hydra run of the fixture
    res = json.loads((run / "results.json").read_text())
    (row,) = progress_table(run).to_dict("records")
    assert row["run"] == run.name
    assert row["state"] == f"tested {100 * res['metrics']['acc']:.1f}% ({res['stopped_by']})"
    best = max(res["history"], key=lambda h: h["val_acc"])
    assert row["best val acc (epoch)"] == f"{100 * best['val_acc']:.1f} ({best['epoch']})"
    assert row["to finish, h:mm"] == "0:00"
    assert main([str(run.parent)]) == 0  # its sweep-level folder finds it too
    # the caps, from the config Hydra saved (conf/trainer/default.yaml's 90 s, debug=fast's epoch)
    assert run_caps(run) == {"max_time": 90, "max_epochs": 1}
    assert run.name in capsys.readouterr().out


def test_missing_or_empty_folders_are_named(tmp_path, capsys):
    assert main([str(tmp_path / "nowhere")]) == 2
    assert str(tmp_path / "nowhere") in capsys.readouterr().err
    assert main([str(tmp_path)]) == 1
    assert "no run folders" in capsys.readouterr().err


def test_a_started_run_without_a_check_says_so_in_any_folder_above_it(tmp_path):
    for sweep in ("fer2013", "paper5"):  # as Hydra starts a job: its .hydra folder first
        (tmp_path / "runs" / sweep / "cnn_seed0" / ".hydra").mkdir(parents=True)
    (row,) = progress_table(tmp_path / "runs" / "paper5").to_dict("records")
    assert row["run"] == "cnn_seed0" and row["best val acc (epoch)"] == "-"
    assert row["state"] == "started, no validation check yet"
    every = progress_table(tmp_path / "runs")  # a folder of sweeps: each sweep's runs
    assert list(every["run"]) == ["fer2013/cnn_seed0", "paper5/cnn_seed0"]


def test_a_failed_run_shows_its_error(tmp_path):
    """A real run that fails on its data (Hydra's entry point writes its failed results)."""
    run = tmp_path / "sweep" / "cnn_seed0"
    res = fer_bench(tmp_path, "+model=cnn", *TINY, "data=fer2013",
                    f"data.root={tmp_path / 'no_such_dataset'}", f"hydra.run.dir={run}")
    assert res.returncode != 0 and json.loads((run / "results.json").read_text())[
        "status"] == "failed"
    (row,) = progress_table(tmp_path / "sweep").to_dict("records")
    assert row["state"].startswith("failed (resume=true runs it again): ")
    assert "DataError: data.root=" in row["state"]  # the cause, named as the run named it


def test_caps_that_cannot_resolve_here_are_left_out(tmp_path):
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text(
        "trainer:\n  max_time: ${oc.env:FER_BENCH_NO_SUCH_VARIABLE}\n"
        "  max_epochs: ${n}\nn: 60\n")
    assert run_caps(tmp_path) == {"max_time": None, "max_epochs": 60}
    assert run_caps(tmp_path / "elsewhere") == {"max_time": None, "max_epochs": None}

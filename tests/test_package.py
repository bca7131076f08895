"""A plain `pip install .` (a wheel, not the editable checkout) carries the configs: the harness
runs from any folder."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_wheel_runs_from_another_folder(tmp_path):
    wheels, site, work = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    work.mkdir()
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(wheels),
                            str(REPO)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--target",
                              str(site), *map(str, wheels.glob("*.whl"))],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-3000:]
    assert (site / "fer_bench" / "conf" / "experiment" / "paper5.yaml").is_file()
    env = {**os.environ, "PYTHONPATH": str(site), "FER_BENCH_ROOT": str(work)}
    where = subprocess.run([sys.executable, "-c", "import fer_bench.conf as c; print(c.__file__)"],
                           cwd=work, env=env, capture_output=True, text=True)
    assert where.stdout.strip().startswith(str(site)), where.stdout + where.stderr
    res = subprocess.run([sys.executable, "-m", "fer_bench", "+model=cnn", "debug=fast"],
                         cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert next(work.rglob("results.json")).is_file()

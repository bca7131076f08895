"""FER+ votes to labels: the authors' majority rule and plurality, against the counts the data
set's README states, and named errors for bad label files."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from fer_bench.classes import canonical
from fer_bench.data.errors import DataError
from fer_bench.data.ferplus import label, list_ferplus
from tests.conftest import REPO

FERPLUS_ROOT = REPO.parent / "shared" / "datasets" / "ferplus"
needs_ferplus = pytest.mark.skipif(not (FERPLUS_ROOT / "README.md").is_file(),
                                   reason="FER+ is not beside the repository")


def readme_majority_table() -> dict[str, dict[str, int]]:
    """{split: {class: count}} from the README's majority table."""
    text = (FERPLUS_ROOT / "README.md").read_text()
    out = {"train": {}, "val": {}, "test": {}}
    for m in re.finditer(r"^\| (\w+)\s*\|\s*([\d,]+) \|\s*([\d,]+) \|\s*([\d,]+) \|$", text, re.M):
        for split, n in zip(out, m.groups()[1:]):
            out[split][canonical(m.group(1))] = int(n.replace(",", ""))
    return out


@needs_ferplus
def test_majority_rule_keeps_the_faces_and_classes_the_readme_states():
    listing, counts = list_ferplus(FERPLUS_ROOT, "majority")
    expected = readme_majority_table()
    assert len(expected["train"]) == 8  # the eight expressions, contempt included
    assert counts["kept"] == expected
    assert {s: sum(v.values()) for s, v in counts["kept"].items()} == {
        "train": 25045, "val": 3191, "test": 3137}
    assert len(listing.entries) == 25045 + 3191 + 3137
    assert counts["unlisted_png"] == {"train": 0, "val": 0, "test": 0}


@needs_ferplus
def test_plurality_rule_keeps_what_the_readme_states():
    _, counts = list_ferplus(FERPLUS_ROOT, "plurality")
    text = (FERPLUS_ROOT / "README.md").read_text()
    stated = re.search(r"keeps\s+([\d,]+) / ([\d,]+) / ([\d,]+)\.\)", text).groups()
    assert [sum(counts["kept"][s].values()) for s in ("train", "val", "test")] == [
        int(n.replace(",", "")) for n in stated]


def test_the_rules_on_single_rows():
    votes = np.array  # neutral happiness surprise sadness anger disgust fear contempt unknown NF
    assert label(votes([0, 0, 0, 0, 2, 1, 0, 7, 0, 0]), "majority") == 7  # contempt
    assert label(votes([2, 0, 0, 6, 0, 0, 0, 0, 2, 0]), "majority") == 3  # 6 of 10 > half
    assert label(votes([3, 0, 0, 5, 0, 0, 0, 0, 2, 0]), "majority") is None  # 5 of 10 is not
    assert label(votes([4, 0, 0, 4, 0, 0, 0, 0, 2, 0]), "majority") is None  # no majority
    assert label(votes([5, 1, 1, 1, 1, 1, 0, 0, 0, 0]), "majority") == 0  # single votes dropped
    assert label(votes([0, 0, 0, 0, 0, 0, 0, 0, 9, 1]), "majority") is None  # unknown wins
    assert label(votes([4, 0, 0, 3, 0, 0, 0, 0, 3, 0]), "plurality") == 0
    assert label(votes([3, 0, 0, 3, 0, 0, 0, 0, 4, 0]), "plurality") is None
    assert label(votes([3, 0, 0, 0, 0, 0, 0, 0, 3, 4]), "plurality") is None
    with pytest.raises(DataError, match="label_mode"):
        label(votes([1] * 10), "votes")


def tiny_ferplus(root, rows=None):
    for folder in ("FER2013Train", "FER2013Valid", "FER2013Test"):
        (root / folder).mkdir(parents=True)
        lines = rows or ['a.png,"(0, 0, 48, 48)",6,2,0,0,0,0,0,0,2,0',
                         'b.png,"(0, 0, 48, 48)",0,9,1,0,0,0,0,0,0,0']
        for line in lines:
            name = line.split(",")[0]
            Image.fromarray(np.zeros((48, 48), np.uint8)).save(root / folder / name)
        (root / folder / "label.csv").write_text("\n".join(lines) + "\n")
    return root


def test_bad_label_files_get_named_errors(tmp_path):
    root = tiny_ferplus(tmp_path / "ok")
    _, counts = list_ferplus(root)
    assert counts["kept"]["train"] == {"neutral": 1, "happy": 1}
    Image.fromarray(np.zeros((48, 48), np.uint8)).save(root / "FER2013Test" / "stray.png")
    assert list_ferplus(root)[1]["unlisted_png"]["test"] == 1  # counted, not dropped silently

    (root / "FER2013Valid" / "b.png").unlink()
    with pytest.raises(DataError, match=r"FER2013Valid/label.csv lists 1 image\(s\) absent"):
        list_ferplus(root)
    (root / "FER2013Valid" / "label.csv").unlink()
    with pytest.raises(DataError, match="FER2013Valid/label.csv is missing"):
        list_ferplus(root)
    bad = tiny_ferplus(tmp_path / "bad", ['a.png,"(0, 0, 48, 48)",6,2,x,0,0,0,0,0,2,0'])
    with pytest.raises(DataError, match="label.csv, row 1: expected"):
        list_ferplus(bad)
    zero = tiny_ferplus(tmp_path / "zero", ['a.png,"(0, 0, 48, 48)",0,0,0,0,0,0,0,0,0,0'])
    with pytest.raises(DataError, match="summing to a positive count"):
        list_ferplus(zero)
    with pytest.raises(DataError, match="lacks FER2013Train/"):
        list_ferplus(tmp_path)

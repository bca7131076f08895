"""README's result tables are copies of committed reports: every cell must match the report it
cites (which its own test regenerates from committed results), so a rerun that changes a report
and a README left behind fail here."""

from __future__ import annotations

import re

import pandas as pd

from fer_bench.report.tables import mean_cell
from tests.conftest import REPO

README = (REPO / "README.md").read_text()


def section(text: str, title: str) -> str:
    """The text from the heading `## <title>` to the next `## `."""
    start = text.index(f"\n## {title}")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def first_table(text: str) -> list[list[str]]:
    """The first Markdown table's rows (header first, the rule left out), cells stripped of **."""
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("|"))
    block = []
    for ln in lines[start:]:
        if not ln.startswith("|"):
            break
        block.append([c.strip().strip("*").strip() for c in ln.strip("|").split("|")])
    return [block[0], *block[2:]]


def cell(mean: float, std: float) -> str:
    return f"{mean:.1f} ± {std:.1f}"


def rates_mismatches(text: str, title: str = "Verdicts at convergence",
                     report: str = "fer2013") -> list[tuple]:
    """(row, family, README's cell, the report's) for every cell of the first table under the
    heading `title` that is not reports/<report>/recognition_rates.csv's (the mean alone for a
    family with one seed so far, as the report shows it: a std over one seed is no spread)."""
    table = first_table(section(text, title))
    rates = pd.read_csv(REPO / f"reports/{report}/recognition_rates.csv", index_col=0)
    summary = pd.read_csv(REPO / f"reports/{report}/summary.csv", index_col="model", dtype=str)
    families = [h.split()[0].lower() for h in table[0][1:]]
    assert families == [c for c in rates.columns if not c.endswith("_std")]
    rows = {r[0]: r[1:] for r in table[1:]}
    assert set(rates.index) <= set(rows), "a report row missing from README"
    return [(name, f, got, want) for name in rates.index
            for f, got in zip(families, rows[name])
            if got != (want := mean_cell(rates.at[name, f], rates.at[name, f"{f}_std"],
                                         len(summary.at[f, "seeds"].split())))]


def label_efficiency_mismatches(text: str) -> list[tuple]:
    """The same for README's label-efficiency table against its report's table (every row the
    report has a figure in for README's families is shown; `-`: no point yet)."""
    table = first_table(section(text, "Label efficiency"))
    report = first_table((REPO / "reports/label_efficiency/label_efficiency.md").read_text())
    columns = [h.lower() for h in report[0][1:]]
    rows = {r[0]: dict(zip(columns, (re.sub(r" \(\d+(; \d+ capped)?\)$", "", c) for c in r[1:])))
            for r in report[1:]}
    families = [h.lower() for h in table[0][1:]]
    shown = {r[0] for r in table[1:]}
    assert shown == {name for name, r in rows.items() if any(r[f] != "-" for f in families)}
    return [(r[0], f, got, rows[r[0]][f]) for r in table[1:]
            for f, got in zip(families, r[1:]) if got != rows[r[0]][f]]


def soft_target_mismatches(text: str) -> list[str]:
    """The figures README's FER+ soft-target paragraph should quote (each family's accuracy and
    ten-view accuracy, mean ± std, from reports/ferplus_probability/summary.csv) that it lacks."""
    paragraph = next(p for p in section(text, "FER+").split("\n\n")
                     if "(reports/ferplus_probability/" in p)  # the one citing the report
    paragraph = " ".join(paragraph.split())  # figures may wrap across lines
    summary = pd.read_csv(REPO / "reports/ferplus_probability/summary.csv", index_col="model")
    return [w for row in summary.itertuples()
            for w in (f"**{cell(row.acc, row.acc_std)}%**",
                      f"({cell(row.acc_tta, row.acc_tta_std)} over ten views)")
            if w not in paragraph]


def test_the_headline_table_is_the_fer2013_report():
    assert rates_mismatches(README) == []


def test_the_paper5_table_is_its_report():
    assert rates_mismatches(README, "Verdicts at convergence: the paper's", "paper5") == []


def test_the_ferplus_table_is_its_report():
    assert rates_mismatches(README, "FER+", "ferplus") == []


def test_the_soft_target_figures_are_their_report():
    assert soft_target_mismatches(README) == []
    quoted = re.search(r"\(reports/ferplus_probability/.*?(\*\*[\d.]+ ± [\d.]+%\*\*)",
                       README, re.S).group(1)
    stale = README.replace(quoted, "**12.3 ± 4.5%**", 1)
    assert soft_target_mismatches(stale) == [quoted]  # a figure left behind is caught


def test_the_label_efficiency_table_is_its_report():
    assert label_efficiency_mismatches(README) == []


def test_a_figure_left_behind_is_caught():
    rates = pd.read_csv(REPO / "reports/fer2013/recognition_rates.csv", index_col=0)
    happy = cell(rates.at["Happy", "cnn"], rates.at["Happy", "cnn_std"])
    stale = README.replace(f"| Happy            | {happy}", "| Happy            | 12.3 ± 4.5", 1)
    assert stale != README
    assert rates_mismatches(stale) == [("Happy", "cnn", "12.3 ± 4.5", happy)]
    first = first_table(section(README, "Label efficiency"))[1]
    stale = README.replace(f"| {first[0]}".ljust(26) + f"| {first[1]}", f"| {first[0]}".ljust(26)
                           + "| 99.9 ± 0.1", 1)
    assert stale != README
    assert [w[2] for w in label_efficiency_mismatches(stale)] == ["99.9 ± 0.1"]


def test_the_reports_index_gives_each_report_its_written_command():
    """reports/README.md lists every report folder with the command written at the top of its
    recognition_rates.md (a report regenerated with new flags and an index left behind fail)."""
    index = (REPO / "reports/README.md").read_text()
    reports = sorted((REPO / "reports").glob("*/recognition_rates.md"))
    assert reports
    for md in reports:
        command = re.search(r"^Regenerate: `([^`]+)`", md.read_text(), re.M).group(1)
        assert f"| `{md.parent.name}/` |" in index and f"`{command}`" in index, md.parent.name

"""`python -m fer_bench.report <sweep or results folder>... [--out reports] [--superseded DIR]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fer_bench.report.collect import archive, collect_for_cli
from fer_bench.report.records import MixedRunsError
from fer_bench.report.write import print_screen, regenerate_command, write_reports


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m fer_bench.report", description=__doc__)
    p.add_argument("folders", nargs="+", help="sweep folders or folders of results .json files")
    p.add_argument("--out", default="reports", help="reports folder (default: reports)")
    p.add_argument("--archive", metavar="FOLDER",
                   help="also copy each finished run's results.json to FOLDER/<run>.json "
                        "(small files to commit; reports regenerate from them alone)")
    p.add_argument("--superseded", metavar="FOLDER", action="append", default=[],
                   help="earlier results these replace (experiments/superseded/<folder>, with a "
                        "README.md saying why): listed, and a budget ladder (repeatable)")
    args = p.parse_args(argv)
    runs, failed, code = collect_for_cli(args.folders)
    if code:
        return code
    if args.archive:
        archive(runs, args.archive)
    command = regenerate_command([args.archive] if args.archive else args.folders,
                                 args.superseded, args.out)
    try:
        written = write_reports(runs, failed, Path(args.out), command, args.superseded)
    except (FileNotFoundError, MixedRunsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print_screen(runs, failed, written)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Mutation testing of the pure core with mutmut, and the score of each module.

    python tools/mutation.py            # run mutmut (resumes where it stopped), then the table
    python tools/mutation.py --table    # only the table, from the last run's results

mutmut changes the code one small edit at a time (`<` to `<=`, a constant, a dropped call)
and runs the tests that cover it: a change no test notices is a "survivor", a line the tests
would let break. Which modules and tests take part is in `[tool.mutmut]` of pyproject.toml.
Too slow for CI (6 to 10 minutes on 2 cores); the README shows the last scores.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# mutmut names a mutant `module.x_function__mutmut_N` or `module.xǁClassǁmethod__mutmut_N`.
MUTANT = re.compile(r"^\s*(?P<module>[\w.]+?)\.xǁ?\w.*__mutmut_\d+: (?P<status>.+?)\s*$")
# A mutant that made the tests fail, hang or not type-check was noticed.
NOTICED = {"killed", "timeout", "caught by type check"}


def results() -> dict[str, Counter[str]]:
    """Each module's mutants by status, as `mutmut results --all true` lists them."""
    listed = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    by_module: dict[str, Counter[str]] = defaultdict(Counter)
    for line in listed.splitlines():
        found = MUTANT.match(line)
        if found:
            by_module[found["module"]][found["status"]] += 1
    return dict(by_module)


def table(by_module: dict[str, Counter[str]]) -> str:
    rows = ["| Module | Mutants | Killed | Survived | Score |", "|---|---:|---:|---:|---:|"]
    total = Counter[str]()
    for module in sorted(by_module):
        counts = by_module[module]
        total.update(counts)
        rows.append(_row(f"`{module}`", counts))
    rows.append(_row("**all**", total))
    return "\n".join(rows)


def _row(name: str, counts: Counter[str]) -> str:
    """A mutant no test reaches ("no tests") counts as survived: nothing would notice it."""
    mutants = sum(counts.values())
    killed = sum(n for status, n in counts.items() if status in NOTICED)
    return f"| {name} | {mutants} | {killed} | {mutants - killed} | {killed / mutants:.0%} |"


def unchecked(by_module: dict[str, Counter[str]]) -> int:
    return sum(counts["not checked"] for counts in by_module.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", action="store_true", help="only print the table of the last run")
    args = parser.parse_args()
    if not args.table:
        run = subprocess.run([sys.executable, "-m", "mutmut", "run"], cwd=ROOT, check=False)
        if run.returncode != 0:
            print(f"mutmut run failed (exit {run.returncode}): see above", file=sys.stderr)
            return run.returncode
    by_module = results()
    if not by_module:
        print("no mutants found: run without --table first", file=sys.stderr)
        return 1
    left = unchecked(by_module)
    if left:
        print(f"{left} mutants not checked yet: the run was stopped; run again to finish", file=sys.stderr)
        return 1
    print(table(by_module))
    return 0


if __name__ == "__main__":
    sys.exit(main())

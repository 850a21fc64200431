"""Rewrite the per-question CSV rows of reports/README.md's table from the question declarations
(bench/<package>/question.py): the rows go after the `index.html` row, replacing the old ones.

    python scripts/reports_readme.py
"""
from __future__ import annotations

from pathlib import Path

from bench.core.question import reports_table

PATH = Path(__file__).resolve().parents[1] / "reports" / "README.md"


def main() -> None:
    lines = [ln for ln in PATH.read_text().splitlines() if not (ln.startswith("| `<run-id>/") and
                                                                 ln.split("`")[1].endswith(".csv"))]
    at = next(i for i, ln in enumerate(lines) if ln.startswith("| `<run-id>/index.html`")) + 1
    PATH.write_text("\n".join(lines[:at] + reports_table().splitlines() + lines[at:]) + "\n")


if __name__ == "__main__":
    main()

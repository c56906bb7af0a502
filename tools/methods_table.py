"""Render docs/methods.md's measured tables from `rftlab compare --json` outputs.

    .venv/bin/python tools/methods_table.py rftlab/results/compare_shift.json rftlab/results/compare_spurious.json
"""
import json
import sys

from rftlab.compare import markdown_table

for path in sys.argv[1:]:
    rows = json.load(open(path))
    print(f"\n<!-- {path} -->")
    print(markdown_table(rows))

"""Source cells of every generated notebook: one module per notebook (see tools/build_notebooks.py)."""

"""Tutorial lesson 1, student version: exercises unanswered (see _tutorial1.py)."""
from ._tutorial1 import NAME, cells

PATH = f"tutorials/{NAME}"
CELLS = cells(solution=False)

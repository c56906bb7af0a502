"""Tutorial lesson 5, student version: exercises unanswered (see _tutorial5.py)."""
from ._tutorial5 import NAME, cells

PATH = f"tutorials/{NAME}"
CELLS = cells(solution=False)

"""Tutorial lesson 6, student version: exercises unanswered (see _tutorial6.py)."""
from ._tutorial6 import NAME, cells

PATH = f"tutorials/{NAME}"
CELLS = cells(solution=False)

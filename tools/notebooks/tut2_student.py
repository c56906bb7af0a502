"""Tutorial lesson 2, student version: exercises unanswered (see _tutorial2.py)."""
from ._tutorial2 import NAME, cells

PATH = f"tutorials/{NAME}"
CELLS = cells(solution=False)

"""Tutorial lesson 4, student version: exercises unanswered (see _tutorial4.py)."""
from ._tutorial4 import NAME, cells

PATH = f"tutorials/{NAME}"
CELLS = cells(solution=False)

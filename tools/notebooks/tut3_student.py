"""Tutorial lesson 3, student version: exercises unanswered (see _tutorial3.py)."""
from ._tutorial3 import NAME, cells

PATH = f"tutorials/{NAME}"
CELLS = cells(solution=False)

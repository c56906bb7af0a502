"""Tutorial lesson 2, solution version: exercises answered, every checker must pass (see _tutorial2.py)."""
from ._tutorial2 import NAME, cells

PATH = f"tutorials/solutions/{NAME}"
CELLS = cells(solution=True)

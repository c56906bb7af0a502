"""Tutorial lesson 6, solution version: exercises answered, every checker must pass (see _tutorial6.py)."""
from ._tutorial6 import NAME, cells

PATH = f"tutorials/solutions/{NAME}"
CELLS = cells(solution=True)

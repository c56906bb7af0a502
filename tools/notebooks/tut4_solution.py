"""Tutorial lesson 4, solution version: exercises answered, every checker must pass (see _tutorial4.py)."""
from ._tutorial4 import NAME, cells

PATH = f"tutorials/solutions/{NAME}"
CELLS = cells(solution=True)

"""Tutorial lesson 5, solution version: exercises answered, every checker must pass (see _tutorial5.py)."""
from ._tutorial5 import NAME, cells

PATH = f"tutorials/solutions/{NAME}"
CELLS = cells(solution=True)

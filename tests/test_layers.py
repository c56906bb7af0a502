"""The layers of docs/architecture.md, checked on the source: what may not import what."""
import ast
from pathlib import Path

import rftlab

PACKAGE = Path(rftlab.__file__).parent


def imported_modules(path: Path, package_dir: Path = PACKAGE) -> set[str]:
    """Every module a file imports, as absolute names, at any depth (function-level imports too):
    ``from ..world.tasks import x`` in rftlab/analysis/a.py is ``rftlab.world.tasks`` (and
    ``rftlab.world.tasks.x``, in case x is a module); ``from .. import world`` is ``rftlab.world``."""
    package = list(path.relative_to(package_dir.parent).parts[:-1])   # a module's package, or an __init__'s own
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            out.add(module)
            out.update(f"{module}.{a.name}" for a in node.names)
    return out


def offenders(folder: str, forbidden: str, package_dir: Path = PACKAGE) -> list[str]:
    return [f"{p.relative_to(package_dir.parent)} imports {m}" for p in sorted((package_dir / folder).rglob("*.py"))
            for m in sorted(imported_modules(p, package_dir)) if m == forbidden or m.startswith(forbidden + ".")]


def test_the_import_walker_resolves_relative_and_function_level_imports(tmp_path):
    fake = tmp_path / "rftlab" / "analysis"
    fake.mkdir(parents=True)
    (fake / "x.py").write_text("def f():\n    from ..world.tasks import PLACES\n    from .. import world\n"
                               "    import rftlab.datasets.phrases\n")
    (fake / "__init__.py").write_text("from .x import f\nfrom .shortcuts import g\n")
    found = imported_modules(fake / "x.py", tmp_path / "rftlab")
    assert {"rftlab.world.tasks", "rftlab.world", "rftlab.datasets.phrases"} <= found
    init = imported_modules(fake / "__init__.py", tmp_path / "rftlab")
    assert {"rftlab.analysis.x", "rftlab.analysis.shortcuts"} <= init
    assert offenders("analysis", "rftlab.world", tmp_path / "rftlab") == ["rftlab/analysis/x.py imports rftlab.world",
                                                    "rftlab/analysis/x.py imports rftlab.world.tasks",
                                                    "rftlab/analysis/x.py imports rftlab.world.tasks.PLACES"]


def test_analysis_widgets_and_datasets_never_import_the_world():
    """They read metadata names and phrases from the Task (metadata_names, metadata_phrases,
    metadata_prompts); the world's facts stay in rftlab.world."""
    for folder in ("analysis", "widgets", "datasets"):
        assert offenders(folder, "rftlab.world") == [], folder


def test_the_world_imports_no_dataset():
    """The registry of both (rftlab/tasks.py) sits above them."""
    assert offenders("world", "rftlab.datasets") == []
    assert offenders("world", "rftlab.tasks") == []
    assert {"rftlab.world.tasks", "rftlab.datasets"} <= imported_modules(PACKAGE / "tasks.py")

"""The import graph of rftlab, read from the source with ``ast``: no cycles, no import of the
top-level package from inside it, no public name that comes from a private module, and the layers
of docs/architecture.md (analysis, widgets and datasets never import the world; the world never
imports datasets).

Every import counts: at module level and inside functions, methods and classes. Importing
``pkg.sub`` runs ``pkg/__init__.py`` first, so an import of a module also counts as an import of
each package above it (except the packages above the importing module itself, which are
already being imported)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "rftlab"


def modules(root: Path) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package) for every ``.py`` file under ``root``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        out[".".join(parts)] = (path, is_pkg)
    return out


def _base(module: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` reads from (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    parts = module.split(".") if is_pkg else module.split(".")[:-1]
    parts = parts[:len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def imports(module: str, is_pkg: bool, tree: ast.AST, known) -> list[str]:
    """Every module of ``known`` that ``tree`` imports, anywhere in the file; ``from pkg import
    name`` counts as an import of ``pkg.name`` when that is a module, else of ``pkg``."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _base(module, is_pkg, node)
            out += [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
    return [m for m in out if m in known]


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports (see the module docstring)."""
    mods = modules(root)
    graph = {}
    for name, (path, is_pkg) in mods.items():
        own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1 + is_pkg)}
        deps = set()
        for target in imports(name, is_pkg, ast.parse(path.read_text(encoding="utf-8")), mods):
            parts = target.split(".")
            deps |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)} - own
        graph[name] = deps - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle ``[a, b, ..., a]`` of the graph, or None (depth-first search)."""
    state: dict[str, int] = {}                     # 1: on the current path, 2: done
    path: list[str] = []

    def visit(v):
        state[v], _ = 1, path.append(v)
        for w in sorted(graph.get(v, ())):
            if state.get(w) == 1:
                return path[path.index(w):] + [w]
            if w not in state and (found := visit(w)):
                return found
        state[v], _ = 2, path.pop()
        return None

    for v in sorted(graph):
        if v not in state and (found := visit(v)):
            return found
    return None


def imports_of_top_package(root: Path) -> list[str]:
    """``module: line`` for each import of the top-level package itself from inside it
    (``import rftlab``, ``from rftlab import x`` where x is not a submodule)."""
    mods = modules(root)
    top = root.name
    bad = []
    for name, (path, is_pkg) in mods.items():
        if name == top:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import) and any(a.name == top for a in node.names):
                bad.append(f"{name}:{node.lineno}")
            elif isinstance(node, ast.ImportFrom) and _base(name, is_pkg, node) == top \
                    and any(f"{top}.{a.name}" not in mods for a in node.names):
                bad.append(f"{name}:{node.lineno}")
    return bad


def _defined_in(mods, module: str, name: str, seen=()) -> str:
    """The module that defines ``name`` as seen from ``module``: ``module`` itself when it
    defines it, else the module it imports the name from, followed to the end."""
    if f"{module}.{name}" in mods:
        return f"{module}.{name}"                  # a submodule
    path, is_pkg = mods[module]
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom):
            for a in node.names:
                if (a.asname or a.name) == name:
                    base = _base(module, is_pkg, node)
                    if base not in mods or (base, a.name) in seen:
                        return base
                    return _defined_in(mods, base, a.name, seen + ((base, a.name),))
    return module


def private_sources(root: Path) -> list[str]:
    """``package: name <- module`` for each name a package exports (``__all__``, the names its
    ``__init__`` imports, and the lazy table ``_EXPORTS`` of the top package) that is defined
    in a module whose name starts with ``_``."""
    mods = modules(root)
    bad = []
    for pkg, (path, is_pkg) in mods.items():
        if not is_pkg:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        wanted: dict[str, str] = {}                 # name -> module it is looked up in
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and _base(pkg, True, node).startswith(root.name):
                for a in node.names:
                    wanted[a.asname or a.name] = pkg
            elif isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets) \
                    and isinstance(node.value, ast.List):
                for elt in node.value.elts:
                    wanted.setdefault(elt.value, pkg)
            elif isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_EXPORTS" for t in node.targets):
                for k, v in zip(node.value.keys, node.value.values):
                    wanted[k.value] = v.value
        for name, where in sorted(wanted.items()):
            if where not in mods:
                bad.append(f"{pkg}: {name} <- {where} (no such module)")
                continue
            source = _defined_in(mods, where, name)
            if any(part.startswith("_") and part != "__init__" for part in source.split(".")):
                bad.append(f"{pkg}: {name} <- {source}")
    return bad


# ------------------------------------------------------------------ rftlab itself
def test_rftlab_has_no_import_cycle():
    cycle = find_cycle(import_graph(ROOT))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_rftlab_never_imports_its_own_top_package():
    assert imports_of_top_package(ROOT) == [], "import the defining module instead of rftlab's lazy table"


def test_public_names_come_from_public_modules():
    assert private_sources(ROOT) == []


# ------------------------------------------------------------------ the checks can fail
def _plant(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_a_planted_cycle_through_a_function_level_import_is_found(tmp_path):
    root = _plant(tmp_path, {
        "__init__.py": "",
        "a.py": "from .sub import b\n",
        "sub/__init__.py": "",
        "sub/b.py": "def f():\n    from ..c import g\n    return g\n",
        "c.py": "import json\nfrom . import a\n",
    })
    graph = import_graph(root)
    assert graph["pkg.a"] == {"pkg.sub", "pkg.sub.b"} and graph["pkg.c"] == {"pkg.a"}
    assert find_cycle(graph) == ["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]
    (root / "c.py").write_text("import json\n")
    assert find_cycle(import_graph(root)) is None


def test_a_cycle_through_a_package_init_is_found(tmp_path):
    root = _plant(tmp_path, {
        "__init__.py": "",
        "a.py": "from .sub.b import x\n",                  # runs sub/__init__.py first
        "sub/__init__.py": "from ..c import y\n",
        "sub/b.py": "x = 1\n",
        "c.py": "def y():\n    from .a import x\n",
    })
    assert find_cycle(import_graph(root)) == ["pkg.a", "pkg.sub", "pkg.c", "pkg.a"]


def test_imports_of_the_top_package_and_private_sources_are_found(tmp_path):
    root = _plant(tmp_path, {
        "__init__.py": "_EXPORTS = {'f': 'pkg.sub', 'g': 'pkg.pub'}\n",
        "pub.py": "from .sub._impl import g\n\ndef h():\n    import pkg\n",
        "sub/__init__.py": "from ._impl import f\nfrom .ok import k\n__all__ = ['f', 'k']\n",
        "sub/_impl.py": "def f(): pass\ndef g(): pass\n",
        "sub/ok.py": "from .. import pub\ndef k(): pass\n",
    })
    assert imports_of_top_package(root) == ["pkg.pub:4"]
    assert private_sources(root) == ["pkg: f <- pkg.sub._impl", "pkg: g <- pkg.sub._impl",
                                     "pkg.sub: f <- pkg.sub._impl"]


@pytest.mark.parametrize("text", ["import pkg\n", "from pkg import helper\n", "from .. import helper\n"])
def test_every_spelling_of_the_top_package_is_caught(tmp_path, text):
    root = _plant(tmp_path, {"__init__.py": "def helper(): pass\n", "sub/__init__.py": "", "sub/m.py": text})
    assert imports_of_top_package(root) == ["pkg.sub.m:1"]


# ------------------------------------------------------------------ layers (docs/architecture.md)
def layer_offenders(graph: dict[str, set[str]], package: str, forbidden: str) -> list[str]:
    """'a imports b' for every module ``a`` of ``package`` (its ``__init__`` included) that imports
    ``forbidden`` or a module under it, at any depth of the file (function-level imports too)."""
    def under(m, p):
        return m == p or m.startswith(p + ".")
    return sorted(f"{m} imports {d}" for m, deps in graph.items() if under(m, package)
                  for d in deps if under(d, forbidden))


def test_analysis_widgets_and_datasets_never_import_the_world():
    """They read metadata names, phrases and prompts from the Task; the world's facts stay in rftlab.world."""
    graph = import_graph(ROOT)
    for package in ("rftlab.analysis", "rftlab.widgets", "rftlab.datasets"):
        assert layer_offenders(graph, package, "rftlab.world") == [], package


def test_the_world_imports_no_dataset_and_the_registry_sits_above_both():
    graph = import_graph(ROOT)
    assert layer_offenders(graph, "rftlab.world", "rftlab.datasets") == []
    assert layer_offenders(graph, "rftlab.world", "rftlab.tasks") == []
    assert layer_offenders(graph, "rftlab.datasets", "rftlab.tasks") == []
    assert {"rftlab.world.tasks", "rftlab.datasets"} <= graph["rftlab.tasks"]


def test_a_planted_layer_violation_is_found(tmp_path):
    root = _plant(tmp_path, {
        "__init__.py": "",
        "world/__init__.py": "", "world/tasks.py": "PLACES = ()\n",
        "analysis/__init__.py": "from .x import f\n",
        "analysis/x.py": "def f():\n    from ..world.tasks import PLACES\n    return PLACES\n",
    })
    graph = import_graph(root)
    assert layer_offenders(graph, "pkg.analysis", "pkg.world") == [
        "pkg.analysis.x imports pkg.world", "pkg.analysis.x imports pkg.world.tasks"]
    (root / "analysis" / "x.py").write_text("def f():\n    return ()\n")
    assert layer_offenders(import_graph(root), "pkg.analysis", "pkg.world") == []


# The layers of docs/architecture.md, lowest first: a module may import its own layer and the ones below.
LAYERS = (
    ("primitives", ("losses", "merging", "optim", "metrics", "files", "errors", "phrases")),
    ("world and data", ("data", "world", "datasets", "tasks")),
    ("models", ("models", "encode", "zeroshot", "classifier")),
    ("evaluation", ("cache", "evaluation")),
    ("training", ("methods", "recipes", "train", "distributed", "pretrain")),
    ("analyses and figures", ("analysis", "plots")),
    ("experiments", ("compare", "tuning", "claims", "phenomena", "run_config", "run_folder", "probe")),
    ("front ends", ("widgets", "cli", "exercises", "__main__")),
)


def layer_of(module: str, package: str = "rftlab", layers=LAYERS) -> int | None:
    """The layer index of a module (by its first name under the package); None for the package itself."""
    parts = module.split(".")
    if len(parts) < 2:
        return None
    for i, (_, names) in enumerate(layers):
        if parts[1] in names:
            return i
    raise AssertionError(f"{module} is in no layer: add it to LAYERS here and to docs/architecture.md")


def upward_imports(graph: dict[str, set[str]], package: str = "rftlab", layers=LAYERS) -> list[str]:
    out = []
    for m, deps in sorted(graph.items()):
        lm = layer_of(m, package, layers)
        for d in sorted(deps):
            ld = layer_of(d, package, layers)
            if lm is not None and ld is not None and ld > lm:
                out.append(f"{m} ({layers[lm][0]}) imports {d} ({layers[ld][0]})")
    return out


def test_no_layer_imports_a_higher_one():
    assert upward_imports(import_graph(ROOT)) == []


def test_every_module_is_in_a_layer_that_docs_architecture_names():
    doc = (ROOT.parent / "docs" / "architecture.md").read_text()
    for name, modules_ in LAYERS:
        assert name in doc, f"docs/architecture.md does not name the layer {name!r}"
    for m in import_graph(ROOT):
        layer_of(m)   # raises for a module in no layer


def test_a_planted_upward_import_is_found(tmp_path):
    root = _plant(tmp_path, {"__init__.py": "", "low.py": "def f():\n    from .high import g\n", "high.py": "g = 1\n"})
    layers = (("low", ("low",)), ("high", ("high",)))
    assert upward_imports(import_graph(root), "pkg", layers) == ["pkg.low (low) imports pkg.high (high)"]
    (root / "low.py").write_text("x = 1\n")
    assert upward_imports(import_graph(root), "pkg", layers) == []

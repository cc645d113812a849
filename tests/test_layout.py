"""The package's shape (docs/design.md): no import circle among its modules, counting every import
statement (also those inside functions); a small top level; the old 0.1 import paths still work."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import maple_edge_lite

PKG_DIR = Path(maple_edge_lite.__file__).resolve().parent
PKG = "maple_edge_lite"


def modules(root: Path = PKG_DIR, pkg: str = PKG):
    """{dotted module name: path} of every .py file under the package, plus compiled modules."""
    out = {}
    for p in sorted(root.rglob("*.py")):
        parts = list(p.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join([pkg] + parts)] = p
    for p in root.glob("*.so"):
        out[f"{pkg}.{p.name.split('.')[0]}"] = p
    return out


def import_edges(mods):
    """{module: set of package modules its import statements name}. ``from X import a`` names
    ``X.a`` when that is a module, else ``X``; relative imports are resolved against the
    importing module's package."""
    edges = {m: set() for m in mods}
    for name, path in mods.items():
        if path.suffix != ".py":
            continue
        is_pkg = path.name == "__init__.py"
        package = name if is_pkg else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in mods else mod for a in node.names]
            for t in targets:
                # `import a.b.c` runs a, a.b and a.b.c; name the deepest one that is ours
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != name:
                    edges[name].add(t)
    return edges


def find_cycle(edges):
    """One import circle as a list of modules, or None (depth-first search)."""
    state = {}
    stack = []

    def visit(u):
        state[u] = 1
        stack.append(u)
        for v in sorted(edges.get(u, ())):
            if state.get(v) == 1:
                return stack[stack.index(v):] + [v]
            if v not in state:
                got = visit(v)
                if got:
                    return got
        stack.pop()
        state[u] = 2
        return None

    for u in sorted(edges):
        if u not in state:
            got = visit(u)
            if got:
                return got
    return None


def test_no_import_circle():
    edges = import_edges(modules())
    assert len(edges) > 40  # every module was found
    cycle = find_cycle(edges)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_cycle_finder_finds_a_planted_circle(tmp_path):
    """The check can fail: a two-module package whose modules import each other inside
    functions, and a three-module circle through a relative ``from . import``."""
    pkg = tmp_path / "fakepkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from .sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("def g():\n    from .. import c\n")
    (pkg / "c.py").write_text("import fakepkg.a\n")
    edges = import_edges(modules(pkg, "fakepkg"))
    assert find_cycle(edges) == ["fakepkg.a", "fakepkg.sub.b", "fakepkg.c", "fakepkg.a"]
    (pkg / "c.py").write_text("import numpy\n")
    assert find_cycle(import_edges(modules(pkg, "fakepkg"))) is None


def test_methods_never_import_the_harness():
    edges = import_edges(modules())
    harness = f"{PKG}.learn.evaluate"
    for m in ("bayes_linear", "mlp", "baselines", "methods", "adapt", "train"):
        assert harness not in edges[f"{PKG}.learn.{m}"], m


def test_device_side_does_not_import_host_side_or_cli():
    edges = import_edges(modules())
    for m, deps in edges.items():
        if m.startswith(f"{PKG}.device"):
            bad = [d for d in deps if d.startswith((f"{PKG}.learn", f"{PKG}.cli"))]
            assert not bad, f"{m} imports {bad}"


def test_top_level_is_small():
    top = [p.name for p in PKG_DIR.iterdir()
           if (p.suffix == ".py") or (p.is_dir() and (p / "__init__.py").exists())]
    assert len(top) <= 12, sorted(top)


def test_no_module_over_600_lines_unless_it_says_why():
    long = []
    for name, path in modules().items():
        if path.suffix != ".py":
            continue
        n = len(path.read_text().splitlines())
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        if n > 620 and "one cohesive" not in doc:
            long.append(f"{name} ({n} lines)")
    assert not long, long


OLD_PATHS = [
    ("maple_edge_lite.counters", "Counters", "maple_edge_lite.device.counters"),
    ("maple_edge_lite.measure", "time_session", "maple_edge_lite.device.measure"),
    ("maple_edge_lite.profile", "load_descriptor", "maple_edge_lite.device.profile"),
    ("maple_edge_lite.runtimes", "get", "maple_edge_lite.device.runtimes"),
    ("maple_edge_lite.builders", "nb201_onnx", "maple_edge_lite.device.builders"),
    ("maple_edge_lite.data", "load_table", "maple_edge_lite.learn.data"),
    ("maple_edge_lite.mlp", "MLP", "maple_edge_lite.learn.mlp"),
    ("maple_edge_lite.fewshot", "adapt_base", "maple_edge_lite.learn.adapt"),
    ("maple_edge_lite.fewshot", "BayesLinear", "maple_edge_lite.learn.bayes_linear"),
    ("maple_edge_lite.evaluate", "leave_one_out", "maple_edge_lite.learn.evaluate"),
    ("maple_edge_lite.evaluate", "Kriging", "maple_edge_lite.learn.baselines"),
]


@pytest.mark.parametrize("old,attr,new", OLD_PATHS)
def test_old_import_paths_still_work(old, attr, new):
    """Each in a fresh interpreter: the old path gives the new object and a FutureWarning
    naming where it went."""
    code = (
        "import importlib, warnings\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        f"    old = importlib.import_module({old!r})\n"
        f"new = importlib.import_module({new!r})\n"
        f"assert getattr(old, {attr!r}) is getattr(new, {attr!r})\n"
        "msgs = [str(x.message) for x in w if issubclass(x.category, FutureWarning)]\n"
        f"assert any({new!r} in m for m in msgs), msgs\n"
        "print('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_old_submodule_path_is_the_same_module():
    code = (
        "import warnings\n"
        "warnings.simplefilter('ignore')\n"
        "import maple_edge_lite.runtimes._base as a\n"
        "import maple_edge_lite.device.runtimes._base as b\n"
        "import maple_edge_lite.counters as c, maple_edge_lite.device.counters as d\n"
        "assert a is b and c is d\n"
        "print('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr

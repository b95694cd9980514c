"""Layers point down: a static check of every import (parsed with ast, nothing is run).

prep (data), metrics, tasks, serving (inference) and the report job (evaluation) import no
torch or lightning; the model imports neither serving nor report code; tasks import torch only
inside functions (losses, post-processing), never at import time; no package imports one above
it (see /ARCHITECTURE.md's table).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "journeyformer"
HEAVY = ("torch", "lightning", "torchmetrics", "onnxscript")

# package -> journeyformer packages it must never import (anywhere in its files)
NEVER = {
    "data": ("synthetic", "training", "model", "export", "inference", "evaluation", "jobs", "pipelines", "tasks"),
    "synthetic": ("training", "model", "export", "inference", "evaluation", "monitoring", "service", "jobs", "pipelines", "tasks"),
    "metrics": ("data", "synthetic", "training", "model", "export", "inference", "evaluation", "jobs", "pipelines", "tasks"),
    "tasks": ("synthetic", "training", "model", "export", "inference", "evaluation", "jobs", "pipelines"),
    "inference": ("synthetic", "training", "model", "export", "evaluation", "monitoring", "jobs", "pipelines"),
    "model": ("synthetic", "training", "export", "inference", "evaluation", "jobs", "pipelines"),
    "evaluation": ("training", "model", "export", "monitoring", "jobs", "pipelines"),
    "training": ("export", "inference", "evaluation", "jobs", "pipelines"),
    "export": ("training", "evaluation", "monitoring", "jobs", "pipelines"),
    "monitoring": ("training", "model", "export", "evaluation", "jobs", "pipelines"),
    "service": ("synthetic", "training", "model", "export", "evaluation", "monitoring", "jobs", "pipelines"),
}  # fmt: skip
# packages that never import a heavy library, and whether function-level imports count
TORCH_FREE = {
    "data": True, "synthetic": True, "metrics": True, "inference": True, "evaluation": True, "monitoring": True,
    "service": True, "tasks": False,
}  # fmt: skip


def imports(path: Path, top_level_only: bool = False) -> list[tuple[str, int]]:
    """(imported module, line) of every import in ``path``; ``top_level_only`` skips imports
    inside functions and ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text(), str(path))
    nodes = []
    if top_level_only:
        for node in tree.body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            nodes += (
                list(ast.walk(node))
                if not isinstance(node, (ast.FunctionDef, ast.ClassDef))
                else []
            )
            if isinstance(node, ast.ClassDef):  # class bodies run at import, methods do not
                nodes += [n for n in node.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    else:
        nodes = [
            n
            for n in ast.walk(tree)
            if not (isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test))
        ]
        skip = {
            id(m)
            for n in ast.walk(tree)
            if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test)
            for m in ast.walk(n)
        }
        nodes = [n for n in nodes if id(n) not in skip]
    out = []
    for node in nodes:
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, node.lineno))
    return out


def files(package: str) -> list[Path]:
    return sorted((SRC / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(NEVER))
def test_layers_point_down(package):
    bad = [
        f"{f.relative_to(SRC)}:{line} imports {mod}"
        for f in files(package)
        for mod, line in imports(f)
        for above in NEVER[package]
        if mod == f"journeyformer.{above}" or mod.startswith(f"journeyformer.{above}.")
    ]
    assert not bad, "imports pointing up:\n" + "\n".join(bad)


@pytest.mark.parametrize("package", sorted(TORCH_FREE))
def test_torch_free_packages(package):
    everywhere = TORCH_FREE[package]
    bad = [
        f"{f.relative_to(SRC)}:{line} imports {mod}"
        for f in files(package)
        for mod, line in imports(f, top_level_only=not everywhere)
        if mod.split(".")[0] in HEAVY
    ]
    assert not bad, (
        f"{package} must not import {HEAVY}"
        + ("" if everywhere else " at import time")
        + ":\n"
        + "\n".join(bad)
    )


def test_pipelines_import_heavy_libraries_lazily():
    bad = [
        m for m, _ in imports(SRC / "pipelines.py", top_level_only=True) if m.split(".")[0] in HEAVY
    ]
    bad += [
        m
        for m, _ in imports(SRC / "pipelines.py", top_level_only=True)
        if m.startswith("journeyformer.") and m.split(".")[1] in ("training", "model", "export")
    ]
    assert not bad


def module_imports(path: Path) -> set[str]:
    """Every journeyformer module ``path`` imports: at import time, inside functions and under
    ``if TYPE_CHECKING:`` alike; ``from package import module`` counts the module."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in found if m.startswith("journeyformer.")}


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for f in SRC.rglob("*.py"):
        name = ".".join(("journeyformer", *f.relative_to(SRC).with_suffix("").parts))
        graph[name.removesuffix(".__init__")] = module_imports(f)
    return {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}


def cycles(graph: dict[str, set[str]]) -> list[str]:
    """One path around each import circle found by a depth-first search."""
    seen: dict[str, int] = {}  # 1 visiting, 2 done
    found: list[str] = []

    def visit(node: str, path: list[str]) -> None:
        seen[node] = 1
        for dep in sorted(graph.get(node, ())):
            if seen.get(dep) == 1:
                found.append(" -> ".join([*path[path.index(dep) :], dep]))
            elif dep not in seen:
                visit(dep, [*path, dep])
        seen[node] = 2

    for node in sorted(graph):
        if node not in seen:
            visit(node, [node])
    return found


def test_no_import_cycles_between_modules():
    """No module imports a module that imports it back, directly or not, counting every import
    (lazy ones inside functions and type-checking ones too): the modules form a tree of layers."""
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(found)


def test_the_cycle_check_sees_a_lazy_circle(tmp_path: Path) -> None:
    """A circle closed only by an import inside a function is still a circle."""
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("import journeyformer.b\n")
    b.write_text("def f():\n    from journeyformer.a import x\n")
    graph = {"journeyformer.a": module_imports(a), "journeyformer.b": module_imports(b)}
    graph = {m: {d for d in deps if d in graph} for m, deps in graph.items()}
    assert cycles(graph) == ["journeyformer.a -> journeyformer.b -> journeyformer.a"]


def test_the_checker_sees_a_forbidden_import(tmp_path):
    """The checks above could pass by parsing nothing: make sure they find a planted import."""
    planted = tmp_path / "bad.py"
    planted.write_text("import numpy\n\ndef f():\n    import torch\n")
    assert ("torch", 4) in imports(planted)
    assert ("torch", 4) not in imports(planted, top_level_only=True)


def _defined_names(path: Path) -> set[str]:
    """Names a module defines itself at top level (functions, classes, assignments)."""
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def test_names_are_imported_from_the_module_that_defines_them():
    """``from journeyformer.x import name`` names the module where ``name`` is defined, not one
    that imports it from elsewhere (no re-export shims; the package root's public API aside)."""
    root = SRC.parent
    repo = root.parent
    sources = [*SRC.rglob("*.py")]
    sources += [p for d in ("tests", "benchmarks", "scripts") for p in (repo / d).rglob("*.py")]
    bad = []
    for f in sources:
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if not (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module):
                continue
            if not node.module.startswith("journeyformer.") or node.module == "journeyformer":
                continue
            target = root / Path(*node.module.split("."))
            module_file = target.with_suffix(".py") if target.with_suffix(".py").exists() else None
            if module_file is None:
                module_file = target / "__init__.py"
            defined = _defined_names(module_file)
            for alias in node.names:
                if alias.name in defined or (target / f"{alias.name}.py").exists():
                    continue
                if (target / alias.name / "__init__.py").exists():
                    continue
                bad.append(f"{f.relative_to(repo)}:{node.lineno} {node.module}.{alias.name}")
    assert not bad, "names imported from a module that does not define them:\n" + "\n".join(bad)


# Layers that act on tasks only through the registry (tasks/): no registered task's name as a
# key or a membership test. data/ is left out: the label facts are defined there by name
# (data/labels/lifecycle.py), and so are the synthetic worlds' stages.
TASK_AGNOSTIC = ("model", "training", "evaluation", "inference", "export", "service", "monitoring")
NAMED_ON_PURPOSE = {
    ("inference/decisions.py", "stage"),  # the segment rules' stage trend reads the stage column
    ("service/triggers.py", "value"),  # a trigger condition's "value" key, not the task
}


def task_name_uses(path: Path, names: set[str]) -> list[tuple[int, str]]:
    """(line, name) of each ``x["<task>"]``, ``"<task>" in x`` and ``x.get/pop("<task>")``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        key = None
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            key = node.slice.value
        elif isinstance(node, ast.Compare) and isinstance(node.left, ast.Constant):
            key = (
                node.left.value
                if any(isinstance(o, (ast.In, ast.NotIn, ast.Eq)) for o in node.ops)
                else None
            )
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", "") in ("get", "pop")
            and node.args
        ):
            key = node.args[0].value if isinstance(node.args[0], ast.Constant) else None
        if isinstance(key, str) and key in names:
            found.append((node.lineno, key))
    return found


def test_no_task_is_named_outside_the_registry() -> None:
    from journeyformer.tasks import registry

    names = set(registry.TASKS)
    bad = [
        f"{rel}:{line} {name!r}"
        for pkg in TASK_AGNOSTIC
        for f in files(pkg)
        for line, name in task_name_uses(f, names)
        if ((rel := f.relative_to(SRC).as_posix()), name) not in NAMED_ON_PURPOSE
    ]
    assert not bad, (
        "task names outside tasks/ (use an attribute of the Task instead):\n" + "\n".join(bad)
    )


def test_the_task_name_check_sees_a_task_name(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        'if "churn" in heads:\n    x = outputs["churn"]\nweights.pop("next_item", None)\n'
    )
    assert sorted(task_name_uses(probe, {"churn", "next_item"})) == [
        (1, "churn"),
        (2, "churn"),
        (3, "next_item"),
    ]

"""The import contract of the package, read from its source: data flows one way (README: Architecture)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "cyclegan"
# Libraries heavy enough (or optional, or platform-specific) that a function may import them where it needs
# them, so that the commands that do not need them start at once.
LAZY = {"albumentations", "cv2", "onnx", "onnxruntime", "onnxscript", "av", "wandb", "torchmetrics", "fcntl"}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[str, int, bool]]:
    """``(imported module, line, at function level)`` for every import in a module of the package."""
    tree = ast.parse(path.read_text())
    package = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else module_name(path)
    found = []
    nested = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
              for n in ast.walk(f) if n is not f}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno, id(node) in nested) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package, up ``level - 1`` packages
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names = [f"{base}.{alias.name}" for alias in node.names]
            # ``from . import x`` imports the module x; ``from .m import f`` imports m
            found += [(n if _is_module(n) else base, node.lineno, id(node) in nested) for n in names]
    return found


def _is_module(name: str) -> bool:
    path = REPO.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
# ``cyclegan.load`` and ``cyclegan.stylize`` import the API when first used (``__init__.__getattr__``), so the
# package's face is no edge: modules below the API import ``__version__`` from it.
LAZY_FACE = ("cyclegan", "cyclegan.api")
GRAPH = {name: {m for m, _, _ in imports(path) if m in MODULES and m != name and (name, m) != LAZY_FACE}
         for name, path in MODULES.items()}


def test_no_import_circles():
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for dep in sorted(GRAPH[name]):
            if state.get(dep) == 1:
                cycle = path[path.index(dep):] + [dep] if dep in path else [name, dep]
                pytest.fail("import circle: " + " → ".join(cycle))
            if dep not in state:
                visit(dep, [*path, dep])
        state[name] = 2

    for name in MODULES:
        if name not in state:
            visit(name, [name])


def reachable(name: str) -> set[str]:
    seen, todo = set(), [name]
    while todo:
        for dep in GRAPH[todo.pop()] - seen:
            seen.add(dep)
            todo.append(dep)
    return seen


def test_layers_import_downwards_only():
    assert not {m for m in GRAPH["cyclegan.checkpoint"] if m.startswith(("cyclegan.models", "cyclegan.style"))}
    for name in MODULES:
        if name.startswith("cyclegan.style"):
            assert not reachable(name) & {"cyclegan.translate", "cyclegan.train"}, name
    assert [name for name, deps in GRAPH.items() if "cyclegan.cli" in deps] == ["cyclegan.__main__"]
    assert not reachable("cyclegan.models") & {m for m in MODULES if m.startswith("cyclegan.style")}


def test_function_level_imports_are_heavy_libraries_with_a_reason():
    """Inside functions only what keeps start-up fast, each with a comment; ``cli.py`` imports every
    command's workflow that way, and says so in its docstring."""
    for name, path in MODULES.items():
        if name == "cyclegan.cli":
            continue
        lines = path.read_text().splitlines()
        for module, line, nested in imports(path):
            if not nested or (name, module) == LAZY_FACE:  # the API, when first used
                continue
            assert module.split(".")[0] in LAZY, f"{path.name}:{line} imports {module} inside a function"
            said = " ".join(lines[max(0, line - 4):line])  # on the line, or above its group of imports
            assert "#" in said, f"{path.name}:{line}: say why {module} is imported inside a function"


def test_no_module_is_long_without_a_reason():
    for path in MODULES.values():
        text = path.read_text()
        if len(text.splitlines()) > 500:
            doc = ast.get_docstring(ast.parse(text)) or ""
            assert "lines" in doc.lower(), f"{path.name} has {len(text.splitlines())} lines and no reason why"

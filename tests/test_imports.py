"""The trainer's import graph, read from the source with `ast`: no module imports itself through
others (an import circle), and no private name crosses a module boundary."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TRAINER = Path(__file__).resolve().parent.parent / "trainer"


def module_name(path: Path) -> str:
    parts = ["prp", "trainer", *path.relative_to(TRAINER).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(TRAINER.rglob("*.py"))}


def imports(name: str) -> list[tuple[str, list[str]]]:
    """(module imported from, names imported) for each import of `name`, at any depth
    (function-level and TYPE_CHECKING imports too: they are circles all the same)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            found.append((source, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names]
    return found


def edges(name: str) -> set[str]:
    """The trainer modules `name` makes Python import: each one named, and the packages above
    them (importing `a.b.c` runs `a/b/__init__.py`), except `name`'s own packages."""
    out = set()
    for source, names in imports(name):
        targets = [f"{source}.{n}" for n in names if f"{source}.{n}" in MODULES] or [source]
        for target in targets:
            parts = target.split(".")
            for k in range(3, len(parts) + 1):
                above = ".".join(parts[:k])
                if above in MODULES and above != name and not name.startswith(above + "."):
                    out.add(above)
    return out


def test_the_module_list_is_the_trainer() -> None:
    assert "prp.trainer.train" in MODULES and "prp.trainer.spaces.nb201" in MODULES
    assert all(edges(m) <= set(MODULES) for m in MODULES)


def test_no_import_circles() -> None:
    graph = {m: edges(m) for m in MODULES}
    circles = []
    done: set[str] = set()

    def visit(m: str, trail: list[str]) -> None:
        if m in trail:
            circles.append(trail[trail.index(m) :] + [m])
            return
        if m in done:
            return
        for n in sorted(graph[m]):
            visit(n, trail + [m])
        done.add(m)

    for m in MODULES:
        visit(m, [])
    assert not circles, "\n".join(" -> ".join(c) for c in circles)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_private_name_crosses_modules(name: str) -> None:
    private = [
        f"{source}.{n}"
        for source, names in imports(name)
        if source.startswith("prp.trainer")
        for n in names
        if n.startswith("_") and not n.startswith("__")
    ]
    assert not private, f"{name} imports private names: {', '.join(private)}"


def test_the_architecture_module_map_lists_every_module_once() -> None:
    """docs/architecture.md's module map has one line per module of trainer/ and runtime/."""
    root = TRAINER.parent
    text = (root / "docs" / "architecture.md").read_text()
    listed = [line.split("`")[1] for line in text.splitlines() if line.startswith("| `")]
    listed = [m for m in listed if m.endswith(".py")]
    tree = sorted(
        str(p.relative_to(root)) for d in ("trainer", "runtime") for p in (root / d).rglob("*.py")
    )
    assert sorted(listed) == tree, (
        f"missing from the map: {sorted(set(tree) - set(listed))}; "
        f"not in the tree: {sorted(set(listed) - set(tree))}"
    )


RUNTIME = TRAINER.parent / "runtime"
LONG = 80  # lines


def long_functions() -> list[str]:
    """Functions and methods of trainer/ and runtime/ over LONG lines whose docstring does not
    say why (it names its length: "over 80 lines", "long only ...")."""
    found = []
    for path in sorted([*TRAINER.rglob("*.py"), *RUNTIME.rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            doc = (ast.get_docstring(node) or "").lower()
            if length > LONG and f"over {LONG} lines" not in doc and "long only" not in doc:
                found.append(f"{path.relative_to(TRAINER.parent)}:{node.lineno} {node.name}")
    return found


def test_no_long_function_without_a_reason() -> None:
    assert long_functions() == []

"""The house without import cycles: the module-level import graph of skelssl, read from the code (ast).

An import of `skelssl.a.b` also runs the package `skelssl.a` (its __init__), so an edge goes to every package on
the way, except the importer's own packages (Python has them running already). Imports under
`if TYPE_CHECKING:` never run and are left out. The layers: evaluation never reaches the training methods,
the training loop or the method-aware config, even through another module; function-local imports of skelssl
modules are at most MAX_LOCAL_IMPORTS, each with its reason in a comment.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "skelssl"
MAX_LOCAL_IMPORTS = 10
# what evaluation must never import, directly or through another module
NOT_BELOW_EVALUATION = ("skelssl.methods", "skelssl.train", "skelssl.config", "skelssl.interop",
                        "skelssl.analysis", "skelssl.commands", "skelssl.cli")


def module_files(package: Path = PACKAGE) -> dict[str, Path]:
    modules = {}
    for path in package.rglob("*.py"):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _targets(node: ast.AST, modules: dict[str, Path]) -> list[str]:
    """The skelssl modules an import statement names (`from skelssl.x import y`: y when it is a module)."""
    def known(name: str) -> str:
        while name not in modules and "." in name:
            name = name.rsplit(".", 1)[0]
        return name

    names = []
    if isinstance(node, ast.Import):
        names = [known(alias.name) for alias in node.names if alias.name.split(".")[0] == "skelssl"]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and \
            node.module.split(".")[0] == "skelssl":
        names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else known(node.module)
                 for a in node.names]
    return names


def _with_packages(importer: str, target: str, modules: dict[str, Path]) -> set[str]:
    parts = target.split(".")
    found = set()
    for end in range(2, len(parts) + 1):
        name = ".".join(parts[:end])
        if name in modules and name != importer and not importer.startswith(name + "."):
            found.add(name)
    return found


def _top_level_statements(tree: ast.Module) -> list[ast.AST]:
    """Statements that run when the module is imported: the body, into if/try blocks, not TYPE_CHECKING."""
    out: list[ast.AST] = []
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, (ast.If, ast.Try)):
            out.extend(sub for sub in ast.walk(node) if isinstance(sub, (ast.Import, ast.ImportFrom)))
        else:
            out.append(node)
    return out


def import_graph(package: Path = PACKAGE) -> tuple[dict[str, set[str]], list[tuple[str, str, int, str]]]:
    """(module -> the skelssl modules its import runs, [(module, function, line, source line) of every
    function-local skelssl import])."""
    modules = module_files(package)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    local = []
    for name, path in modules.items():
        text = path.read_text()
        tree = ast.parse(text)
        for node in _top_level_statements(tree):
            for target in _targets(node, modules):
                graph[name] |= _with_packages(name, target, modules)
        lines = text.splitlines()
        for function in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
            for node in ast.walk(function):
                if _targets(node, modules):
                    local.append((name, function.name, node.lineno, lines[node.lineno - 1]))
    return graph, local


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as [a, b, ..., a], or None (depth-first search, colouring)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_the_cycle_finder_finds_a_hand_made_cycle_and_no_false_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_reads_parent_packages_and_skips_type_checking(tmp_path):
    pkg = tmp_path / "skelssl"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from skelssl.sub.leaf import x\n")
    (pkg / "sub" / "leaf.py").write_text("x = 1\n")
    (pkg / "user.py").write_text("from typing import TYPE_CHECKING\nfrom skelssl.sub.leaf import x\n"
                                 "if TYPE_CHECKING:\n    from skelssl.other import y\n"
                                 "def f():\n    from skelssl.sub import leaf  # why\n")
    (pkg / "other.py").write_text("import skelssl.user\n")
    graph, local = import_graph(pkg)
    assert graph["skelssl.user"] == {"skelssl.sub", "skelssl.sub.leaf"}  # the package runs first
    assert graph["skelssl.sub"] == {"skelssl.sub.leaf"}  # its own package is not an edge of a submodule
    assert [(m, f) for m, f, _, _ in local] == [("skelssl.user", "f")]


def test_skelssl_has_no_import_cycle():
    graph, _ = import_graph()
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("start", sorted(m for m in module_files() if m.startswith("skelssl.evaluation")))
def test_evaluation_never_reaches_training(start):
    graph, _ = import_graph()
    bad = sorted(m for m in reachable(graph, start) if m.startswith(NOT_BELOW_EVALUATION))
    assert not bad, f"{start} imports (perhaps through others) {', '.join(bad[:5])}"


def test_function_local_skelssl_imports_are_few_and_say_why():
    _, local = import_graph()
    assert len(local) <= MAX_LOCAL_IMPORTS, "function-local skelssl imports:\n" + "\n".join(
        f"  {m}.{f} line {line}: {text.strip()}" for m, f, line, text in local)
    without_reason = [f"{m}.{f} line {line}" for m, f, line, text in local if "#" not in text]
    assert not without_reason, f"function-local imports without a reason (a # comment): {without_reason}"

"""The house's layers only look down: tabs → methods → core. No method imports another method, nothing in core
outside core/methods imports a method, nothing below the tabs imports a tab, and no module imports itself
through others (every import counts, those inside functions too)."""
from __future__ import annotations

import ast
from pathlib import Path

from core import config

ROOT = config.ROOT


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """The project modules `path` imports (a `from package import name` counts the submodule when it is one)."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                is_module = (ROOT / Path(*candidate.split("."))).with_suffix(".py").is_file()
                found.add(candidate if is_module else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.split(".")[0] in ("core", "tabs")}


def graph() -> dict[str, set[str]]:
    files = [*ROOT.glob("core/**/*.py"), *ROOT.glob("tabs/*.py")]
    return {module_name(path): imports_of(path) for path in files}


def layer(module: str) -> str:
    return "tabs" if module.startswith("tabs") else "methods" if module.startswith("core.methods.") else "core"


def upward(module: str, imported: str) -> bool:
    """An import that looks up, or sideways from one method to another."""
    if layer(imported) == "tabs":
        return layer(module) != "tabs"
    if layer(imported) == "methods":
        return layer(module) == "core" or (layer(module) == "methods" and imported != module)
    return False


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    found, state, path = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in edges:
                continue
            if state.get(nxt) == "open":
                found.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)
    return found


def test_the_checks_catch_what_they_should():
    assert upward("core.methods.dreamix", "core.methods.animatediff")  # method → method
    assert upward("core.models", "core.methods.chatface")  # core → method
    assert upward("core.sampling", "tabs.common") and upward("core.methods.p2p", "tabs.p2p")  # anything → tab
    assert not upward("tabs.p2p", "core.methods.p2p") and not upward("core.methods.p2p", "core.control.prompt_to_prompt")
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_layers_only_look_down():
    edges = graph()
    assert "core.methods.p2p" in edges and "tabs.p2p" in edges  # the walk sees the tree
    wrong = sorted(f"{module} → {imported}" for module, deps in edges.items() for imported in deps
                   if upward(module, imported))
    assert wrong == [], wrong


def test_no_import_cycles():
    assert cycles(graph()) == []

"""Print every import cycle in edgecam, between modules and between packages; exit 1 if any.

    python tools/import_cycles.py

Imports inside functions count too. A package is a folder under edgecam/ (edgecam.camera, edgecam.model with
its backends, ...); each module at the root (edgecam.cli, edgecam.errors, ...) counts as its own. Two packages
must not import each other, directly or through others (docs/architecture.md: the order from low to high).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "edgecam"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str) -> str:
    """The top-level package a module belongs to: edgecam.model.backends.cpu -> edgecam.model; a root module
    (edgecam.cli) and edgecam itself are their own."""
    return ".".join(module.split(".")[:2])


def imports(path: Path, name: str, modules: set[str]) -> set[str]:
    """The edgecam modules ``path`` imports, wherever in the file the import is."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        found.update(t for t in targets if t in modules and t != name)
    return found


def package_graph(graph: dict[str, set[str]]) -> tuple[dict[str, set[str]], dict[tuple[str, str], list[str]]]:
    """The module graph folded into packages, and for each package edge the module imports that make it."""
    packages: dict[str, set[str]] = {package_of(m): set() for m in graph}
    why: dict[tuple[str, str], list[str]] = {}
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            a, b = package_of(module), package_of(target)
            if a != b:
                packages[a].add(b)
                why.setdefault((a, b), []).append(f"{module} -> {target}")
    return packages, why


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every elementary cycle, found once each (depth-first from each module, smallest module first)."""
    out = []
    order = sorted(graph)
    for i, start in enumerate(order):
        allowed = set(order[i:])
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph[node]):
                if nxt == start:
                    out.append(path + [start])
                elif nxt in allowed and nxt not in path:
                    stack.append((nxt, path + [nxt]))
    return out


def tangles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of nodes that reach each other (strongly connected components of two or more), each sorted.

    Between packages this is what to report: elementary cycles multiply (a dozen tangled packages have
    hundreds), while each group names the packages to pull apart and the imports between them."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups = []

    def visit(node: str) -> None:  # Tarjan's algorithm; a few dozen packages, so recursion is fine
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def main() -> int:
    files = {module_name(p): p for p in sorted((ROOT / PACKAGE).rglob("*.py"))}
    graph = {name: imports(path, name, set(files)) for name, path in files.items()}
    found = cycles(graph)
    for cycle in found:
        print("import cycle: " + " -> ".join(cycle))
    print(f"{len(files)} modules, {sum(map(len, graph.values()))} imports, {len(found)} cycle(s)")
    packages, why = package_graph(graph)
    found_packages = tangles(packages)
    for group in found_packages:
        print("package cycle: " + ", ".join(group) + " import each other:")
        for a in group:
            for b in sorted(packages[a] & set(group)):
                print(f"    {a} -> {b}: " + ", ".join(why[(a, b)]))
    print(f"{len(packages)} packages, {sum(map(len, packages.values()))} package imports, "
          f"{len(found_packages)} package cycle(s)")
    return 1 if found or found_packages else 0


if __name__ == "__main__":
    sys.exit(main())

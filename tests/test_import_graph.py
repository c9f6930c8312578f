"""The package's import graph, built with ``ast``: floors, no circle, few function-level imports.

Floors from the ground up (issue 22): core -> runtime -> models -> heads, data -> eval, embed ->
convert -> train, quantize, personal, bench -> board, trt -> face, demo -> cli. A module may import
its own floor or a lower one. Nodes are files; every import of a package resolves to its
``__init__.py`` and ``from pkg import mod`` to the module file.
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lcefr"

FLOORS = [
    ("core", ["__init__", "registry", "preprocess", "fileio", "stack", "cuda_ref", "vocab"]),
    ("runtime", ["runtime"]),
    ("models", ["quantizers", "layers", "keras_graph", "models", "profile"]),
    ("heads, data", ["heads", "data"]),
    ("eval, embed, source", ["eval", "embed", "source"]),
    ("convert", ["convert"]),
    ("train, quantize, personal, bench, estimate", ["train", "quantize", "personal", "bench", "estimate"]),
    ("board, trt", ["board", "trt"]),
    ("face, demo", ["face", "demo"]),
    ("cli", ["cli", "__main__"]),
]
#: function-level imports of lcefr modules allowed outside lcefr/cli (each with its reason in the code)
MAX_LAZY = 10


def floor_of(module: str) -> int:
    """Floor index of a dotted module name ``lcefr.x.y``."""
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    for i, (_, names) in enumerate(FLOORS):
        if top in names:
            return i
    raise KeyError(f"{module} is on no floor: add it to FLOORS")


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def _modules():
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str, modules) -> str:
    while name not in modules and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def imports(path: Path, modules):
    """``(target module, lineno, top_level)`` for each import of an lcefr module in ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    top_level = set()
    for node in tree.body:
        for sub in ast.walk(node):
            if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                break
        else:
            top_level.add(id(node))
    found = []

    def visit(node, in_function):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            in_function = True
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "lcefr" or alias.name.startswith("lcefr."):
                    found.append((_resolve(alias.name, modules), node.lineno, not in_function))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base == "lcefr" or base.startswith("lcefr."):
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    target = full if full in modules else _resolve(base, modules)
                    found.append((target, node.lineno, not in_function))
        for child in ast.iter_child_nodes(node):
            visit(child, in_function)

    visit(tree, False)
    unique = {}
    for target, line, top in found:
        if target != me:
            unique.setdefault((target, line), (target, line, top))
    return list(unique.values())


def graph():
    modules = _modules()
    return modules, {name: imports(path, modules) for name, path in modules.items()}


def cycles(edges):
    """Strongly connected components with more than one file (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            strong(v)
    return out


def test_every_module_is_on_a_floor():
    for name in _modules():
        floor_of(name)


def test_no_import_from_a_lower_floor_to_a_higher_one():
    _, found = graph()
    upward = [f"{src} (floor {FLOORS[floor_of(src)][0]}) imports {dst} (floor {FLOORS[floor_of(dst)][0]}) at line {line}"
              for src, targets in found.items() for dst, line, _ in targets if floor_of(dst) > floor_of(src)]
    assert not upward, "\n".join(upward)


def test_no_circle():
    _, found = graph()
    edges = {src: {dst for dst, _, _ in targets} for src, targets in found.items()}
    assert not cycles(edges)


def test_function_level_imports_outside_the_cli():
    modules, found = graph()
    lazy = sorted({f"{src}:{line}" for src, targets in found.items() if floor_of(src) != len(FLOORS) - 1
                   for dst, line, top in targets if not top})
    assert len(lazy) <= MAX_LAZY, "\n".join(lazy)
    for entry in lazy:
        src, line = entry.rsplit(":", 1)
        lines = modules[src].read_text().splitlines()
        context = " ".join(lines[max(0, int(line) - 3):int(line)])
        assert "#" in context, f"{entry}: a function-level import needs a one-line reason comment"


@pytest.mark.parametrize("source, expected", [
    ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
])
def test_cycle_finder(source, expected):
    assert cycles(source) == expected


def test_no_sys_path_edits():
    root = PACKAGE.parent
    found = [f"{p.relative_to(root)}:{i}" for folder in ("lcefr", "jetson", "converters") for p in (root / folder).rglob("*.py")
             for i, line in enumerate(p.read_text().splitlines(), 1) if "sys.path" in line and not line.lstrip().startswith("#")]
    assert not found, found

"""The package's shape: no import cycle among its modules, not even through imports inside
functions (CONVENTIONS.md, "Dependencies point one way")."""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# folder -> the dotted name it installs as (setup.py package_dir)
PACKAGES = {"pointcalip": "pointcalip", "projection": "pointcalip.projection",
            "datasets": "pointcalip.datasets"}


def module_files() -> dict[str, Path]:
    """{dotted module name: file} for every module the package installs."""
    found = {}
    for folder, dotted in PACKAGES.items():
        for path in (REPO / folder).rglob("*.py"):
            parts = path.relative_to(REPO / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((dotted, *parts))] = path
    return found


def imports_of(name: str, path: Path, modules: set[str]) -> set[str]:
    """The package modules that `name` (the module in `path`) imports, at any depth of its code."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from X import y` names module X.y when y is a module, else something in X
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:          # `import a.b.c` of a name inside a module
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as [a, b, ..., a], or [] when the graph has none."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    return {name: imports_of(name, path, set(files)) for name, path in files.items()}


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    edges = {(a, b) for a, deps in graph.items() for b in deps}
    assert len(graph) > 40 and ("pointcalip.pipeline", "pointcalip.search") in edges   # it reads the tree
    assert find_cycle(graph) == [], "import cycle: " + " -> ".join(find_cycle(graph))


def test_the_cycle_finder_sees_lazy_and_relative_imports(tmp_path):
    """The checker itself can fail: a cycle closed by an import inside a function is found."""
    graph = {"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": set()}
    assert find_cycle(graph) == []
    graph["p.c"] = {"p.a"}
    assert find_cycle(graph) == ["p.a", "p.b", "p.c", "p.a"]
    source = "def f():\n    from .. import a\n    from .b import thing\n"
    path = tmp_path / "x.py"
    path.write_text(source)
    assert imports_of("p.sub.x", path, {"p.a", "p.sub.b", "p.sub.x"}) == {"p.a", "p.sub.b"}


def test_tasks_take_their_stages_from_the_data_path_not_from_zero_shot():
    """The stages every task shares live in `pointcalip.pipeline`; only the zero-shot command
    imports the zero-shot task (issue 26: eleven modules used to import `zeroshot`)."""
    graph = import_graph()
    users = sorted(name for name, deps in graph.items() if "pointcalip.zeroshot" in deps)
    assert users == ["pointcalip.commands.zeroshot"]
    assert "pointcalip.zeroshot" not in graph["pointcalip.pipeline"]


def test_the_documented_zero_shot_imports_still_work():
    """`from pointcalip.zeroshot import ...` (README) gives the data path's own stages."""
    import pointcalip.pipeline as pipeline
    import pointcalip.zeroshot as zeroshot
    shared = ["load_data", "validation_rows", "load_splits", "open_store", "split_store",
              "class_text", "compute_view_logits", "compute_view_logits_for",
              "stored_view_logits", "tune_grids", "tune", "evaluate", "data_key", "ViewLogits",
              "TuningSet", "DataSplits", "ZeroShotSplits", "TEMPERATURE"]
    for name in shared:
        assert getattr(zeroshot, name) is getattr(pipeline, name), name
    assert set(shared) <= set(zeroshot.__all__)
    assert callable(zeroshot.run_zeroshot) and zeroshot.ZeroShotResult.__module__ == "pointcalip.zeroshot"

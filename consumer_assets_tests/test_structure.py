"""The code's shape, as a maintainer relies on it: imports that point one way, asset keys spelled once."""

import ast
import re
from pathlib import Path

from consumer_assets.definitions import defs

REPO = Path(__file__).parents[1]
PACKAGE = REPO / "consumer_assets"


def _module(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _run_time_imports() -> dict[str, set[str]]:
    """Each module's imports of the package's modules at import time (module level; TYPE_CHECKING blocks and
    imports inside functions are not)."""
    modules = {_module(path): path for path in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        imported = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("consumer_assets"):
                imported |= {f"{node.module}.{a.name}" for a in node.names} | {node.module}
            elif isinstance(node, ast.Import):
                imported |= {a.name for a in node.names}
        graph[name] = (imported & modules.keys()) - {name}
    return graph


def test_no_import_cycle():
    graph, done, path = _run_time_imports(), set(), []

    def visit(module: str) -> None:
        if module in path:
            raise AssertionError("import cycle: " + " -> ".join([*path[path.index(module) :], module]))
        if module in done:
            return
        path.append(module)
        for imported in sorted(graph[module]):
            visit(imported)
        path.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)
    assert len(done) == len(graph) > 50


def test_plain_modules_import_no_dagster():
    """Business logic stays importable where dagster is not installed (the GPU machine, a notebook)."""
    plain = [PACKAGE / "automation" / name for name in ("landing_scan.py", "reconcile.py", "liveness.py")]
    plain += [p for folder in ("model", "simulation", "storage", "ingest") for p in (PACKAGE / folder).glob("*.py")]
    for path in plain:
        if path.name not in ("resources.py", "assets.py"):
            assert "import dagster" not in path.read_text(), path


def test_asset_keys_are_spelled_once():
    """Every asset key appears as a string only in asset_keys.py (a dict key of a JSON field is not an asset key)."""
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    spelled = {}
    for path in PACKAGE.rglob("*.py"):
        if path.name == "asset_keys.py":
            continue
        for key in keys:
            if re.search(rf'"{key}"(?!\s*:)', path.read_text()):
                spelled.setdefault(key, []).append(str(path.relative_to(REPO)))
    assert spelled == {}


def test_storage_layers_import_one_way():
    """objects (folder or S3, conditional writes) -> lease -> root (partitions): no layer names one above it, not
    even for type checking."""
    layers = ["objects", "lease", "root"]
    for below, module in enumerate(layers):
        text = (PACKAGE / "storage" / f"{module}.py").read_text()
        for above in layers[below + 1 :]:
            assert f"consumer_assets.storage.{above}" not in text, f"storage/{module}.py imports storage/{above}.py"

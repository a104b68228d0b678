"""The package declares what it imports: a production install (no dev extras) has every module the code imports.

CI also proves it for real (``make check-install``: a clean environment, the definitions loaded, the code server
answering); this test says which import is undeclared in a second, before anything is installed.
"""

import ast
import importlib.metadata as metadata
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def runtime_distributions(requirements: list[str]) -> set[str]:
    """The declared runtime requirements and, transitively, theirs (with the extras asked for); the project's own
    extras left out."""
    closure, todo = set(), [(Requirement(r), "") for r in requirements]
    while todo:
        requirement, extra = todo.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        if (name, tuple(sorted(requirement.extras))) in closure:
            continue
        closure.add((name, tuple(sorted(requirement.extras))))
        for wanted in ["", *requirement.extras]:
            todo.extend((Requirement(r), wanted) for r in metadata.requires(name) or [])
    return {name for name, _ in closure}


def imported_modules(package: Path) -> dict[str, str]:
    """Top-level third-party modules the package imports, each with one file that imports it."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module]
                if isinstance(node, ast.ImportFrom) and node.level == 0
                else []
            )
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "consumer_assets":
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def undeclared_imports(package: Path, requirements: list[str]) -> list[str]:
    declared = runtime_distributions(requirements)
    providers = metadata.packages_distributions()
    return [
        f"{module} (imported by {where}; provided by {', '.join(providers.get(module, ['nothing installed']))})"
        for module, where in imported_modules(package).items()
        if not {canonicalize_name(d) for d in providers.get(module, [])} & declared
    ]


def test_every_runtime_import_is_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert undeclared_imports(ROOT / "consumer_assets", project["dependencies"]) == []


def test_an_undeclared_import_is_named(tmp_path):
    """The check itself: psutil, imported by the dead-run sensor, is missing once the declaration is dropped."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    without = [r for r in project["dependencies"] if canonicalize_name(Requirement(r).name) != "psutil"]
    [missing] = undeclared_imports(ROOT / "consumer_assets", without)
    assert missing.startswith("psutil (imported by consumer_assets/automation/liveness.py")


def test_only_public_dagster_apis_are_imported():
    """Private modules (dagster._core, ...) change between releases without notice; the code uses dagster's public
    names."""
    private = []
    for path in sorted((ROOT / "consumer_assets").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            private += [
                f"{path.relative_to(ROOT)}: {name}"
                for name in names
                if name.split(".")[0].startswith("dagster") and "._" in name
            ]
    assert private == []

"""The docs as a reader meets them: a short README, links that resolve, generated parts equal to the code's."""

import re
import runpy
from pathlib import Path

import pytest

REPO = Path(__file__).parents[1]
DOCS = REPO / "docs"
GENERATOR = runpy.run_path(str(DOCS / "generate.py"))


def test_the_readme_is_short_and_the_rest_is_in_docs():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    linked = set(re.findall(r"\]\(docs/([\w-]+\.md)\)", readme))
    assert linked == {p.name for p in DOCS.glob("*.md")}, "every page of docs/ is linked from the README"


@pytest.mark.parametrize("page", ["README.md", *sorted(f"docs/{p.name}" for p in DOCS.glob("*.md"))])
def test_every_relative_link_resolves(page):
    path = REPO / page
    for target in re.findall(r"\]\(([^)#:]+\.md)(?:#[\w-]+)?\)", path.read_text()):
        assert (path.parent / target).exists(), f"{page} links to {target}, which does not exist"


@pytest.mark.parametrize("name", sorted(GENERATOR["GENERATED"]))
def test_generated_parts_are_current(name):
    text = (REPO / name).read_text()
    for part, generate in GENERATOR["GENERATED"][name].items():
        assert GENERATOR["rewrite"](text, part, generate()) == text, f"{name}: `make docs` rewrites {part}"


def test_only_the_environment_module_reads_the_environment():
    """Deployment settings have one reader (consumer_assets/environment.py), so the README's table lists them all."""
    package = REPO / "consumer_assets"
    readers = {
        str(path.relative_to(REPO))
        for path in package.rglob("*.py")
        if re.search(r"os\.environ(\.get|\[)|os\.getenv|\bgetenv\(", path.read_text())
    }
    assert readers == {"consumer_assets/environment.py"}

"""The README's library example runs as written (a doctest)."""
import doctest
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs():
    result = doctest.testfile(str(README), module_relative=False, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted >= 5, "the README lost its example"
    assert result.failed == 0, f"{result.failed} of {result.attempted} README examples failed"


def test_readme_links_point_at_files_in_the_repository():
    import re

    text = README.read_text()
    targets = {t.split("#", 1)[0] for t in re.findall(r"\]\(([^)\s]+)\)", text)
               if not re.match(r"^[a-z]+:", t) and not t.startswith("#")}
    missing = sorted(t for t in targets if t and not (README.parent / t).exists())
    assert not missing, f"README links to missing files: {missing}"
    assert len(README.read_text().splitlines()) <= 250, "the README is a landing page: details go to docs/"

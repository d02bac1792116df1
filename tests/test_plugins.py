"""Solvers from other packages: the ``permsolve.solvers`` entry-point group.

Each test lays out a tiny plugin distribution in ``tmp_path``: the package and
a ``.dist-info`` folder with ``entry_points.txt``, which is exactly what
``pip install`` leaves in site-packages.  It goes on the path of a child
process only (``PYTHONPATH``), so nothing is installed into the test
environment and nothing is left behind; the child sees the entry point
through ``importlib.metadata`` as it would see an installed package's.
"""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PLUGIN = '''\
"""A third-party solver: the best of a few random permutations (never worse than the start)."""
from permsolve.registry import Solver


class RandomTries(Solver):
    name = "plugin-random-tries"
    description = "plugin test: best of a few random permutations"
    options = {"tries": 4}
    randomized = True

    def _solve(self, problem, run, rng):
        for _ in range(int(self.opts["tries"])):
            if run.expired():
                break
            run.offer({k: rng.permutation(n) for k, n in problem.perm_sizes.items()})
            run.nit += 1
'''


def make_plugin(root: Path, entry_points: dict[str, str], files: dict[str, str]) -> Path:
    """Write a distribution ``permsolve-test-plugin`` into ``root``; return ``root``."""
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    info = root / "permsolve_test_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: permsolve-test-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[permsolve.solvers]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))
    return root


def run_child(args, site: Path, timeout=600):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def plugin_site(tmp_path):
    return make_plugin(tmp_path / "site", {"random-tries": "ps_test_plugin:RandomTries"},
                       {"ps_test_plugin/__init__.py": PLUGIN})


def test_plugin_listed_by_permsolve_solvers(plugin_site):
    p = run_child(["-m", "permsolve", "solvers"], plugin_site)
    assert p.returncode == 0, p.stderr
    assert "plugin-random-tries" in p.stdout and "greedy" in p.stdout
    assert "Warning" not in p.stderr


def test_plugin_passes_the_contract_tests(plugin_site):
    p = run_child(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                   "tests/test_contract.py", "-k", "plugin-random-tries"], plugin_site)
    tail = p.stdout[-3000:] + p.stderr[-2000:]
    assert p.returncode == 0, tail
    assert " passed" in p.stdout and "failed" not in p.stdout, tail


def test_broken_plugin_warns_and_leaves_the_registry_working(tmp_path):
    site = make_plugin(tmp_path / "site",
                       {"broken": "ps_broken_plugin:Missing", "not-a-solver": "ps_broken_plugin:VALUE",
                        "clash": "ps_broken_plugin:Clash", "gone": "ps_no_such_module:X"},
                       {"ps_broken_plugin/__init__.py": textwrap.dedent('''\
                            from permsolve.registry import Solver
                            VALUE = 3
                            class Clash(Solver):
                                name = "greedy"
                                description = "a second solver named greedy"
                            ''')})
    p = run_child(["-W", "always", "-c", "import permsolve; print(sorted(permsolve.available_solvers()))"], site)
    assert p.returncode == 0, p.stderr
    assert "'greedy'" in p.stdout and "'hungarian'" in p.stdout
    for name in ("broken", "not-a-solver", "clash", "gone"):
        assert f"solver plugin {name!r}" in p.stderr, (name, p.stderr)
    assert "Traceback" not in p.stderr

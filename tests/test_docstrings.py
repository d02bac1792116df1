"""Run the examples in the docstrings of ``permsolve.solvers`` and ``permsolve.problems``.

pytest's ``--doctest-modules`` collects ``permsolve/`` directly; these two
sub-packages live in ``solvers/`` and ``problems/`` and are installed under
``permsolve``, so their examples are run here, through the installed names.
"""
import doctest
import importlib
import pkgutil

import pytest

import permsolve.problems
import permsolve.solvers

MODULES = sorted(f"{pkg.__name__}.{m.name}" for pkg in (permsolve.solvers, permsolve.problems)
                 for m in pkgutil.iter_modules(pkg.__path__))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    mod = importlib.import_module(name)
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"

"""Every public definition of permsolve has a numpydoc docstring with a runnable example (issue 13).

The public API is every module reachable from the package (``permsolve/*.py``,
``permsolve.bench``, ``.cli``, ``.compress``, ``.torch``, ``.zoo``, and the
installed ``permsolve.solvers`` and ``permsolve.problems``), private modules
(a leading underscore) left out.  A module's public names are its ``__all__``,
or, without one, the functions and classes defined in it whose names do not
start with ``_``.  A public function or class must have

* a one-line summary (the first line, then a blank line or nothing);
* a ``Parameters`` section when it takes parameters (``self``/``cls`` aside;
  a class: those of a constructor of its own, documented in the class or
  ``__init__`` docstring, as ``Parameters`` or, for a dataclass's fields,
  ``Attributes``);
* a ``Returns`` (or, for a generator, ``Yields``) section when a function
  returns something (a ``return`` with a value, or a return annotation other
  than ``None``);
* an ``Examples`` section with at least one ``>>>`` line, which the doctest
  run of ``make test`` executes: ``pytest --doctest-modules`` for the files in
  ``permsolve/``, ``tests/test_docstrings.py`` for ``solvers/`` and
  ``problems/`` (both checked below).

Public methods, properties and nested classes of a public class need a
one-line summary; their examples are optional.

Definitions in the files listed in ``PENDING`` are expected to fail (xfail,
not strict) while other branches rewrite those files; remove an entry once
its branch is merged.  ``python tests/test_public_docstrings.py`` prints, per
file, how many public definitions lack a docstring or fail a check.
"""
from __future__ import annotations

import ast
import dataclasses
import doctest
import functools
import importlib
import inspect
import pkgutil
import re
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: files another branch is rewriting right now (they add their own docstrings):
#: repository path -> branch.  The lead removes an entry after merging that branch.
PENDING = {
}

#: the packages whose modules make up the public API
PACKAGES = ("permsolve", "permsolve.solvers", "permsolve.problems")

#: where the installed packages live in the repository (pyproject.toml's package-dir)
PACKAGE_DIRS = {"permsolve.solvers": "solvers", "permsolve.problems": "problems", "permsolve": "permsolve"}

_SECTION = re.compile(r"^([A-Z][A-Za-z ]*[a-z])\n-{3,}[ \t]*$", re.M)


def pending_reason(path: str) -> str | None:
    """Why the definitions of repository file ``path`` may still fail, or None."""
    for prefix, branch in PENDING.items():
        if path == prefix or (prefix.endswith("/") and path.startswith(prefix)):
            return f"{path} is being rewritten in branch {branch}"
    return None


def public_modules() -> list[str]:
    """The dotted names of the public modules (packages included), sorted."""
    out = set()

    def walk(name):
        out.add(name)
        pkg = importlib.import_module(name)
        for info in pkgutil.iter_modules(getattr(pkg, "__path__", [])):
            if info.name.startswith("_"):
                continue
            sub = f"{name}.{info.name}"
            if info.ispkg:
                walk(sub)
            else:
                out.add(sub)

    for p in PACKAGES:
        walk(p)
    return sorted(out)


def _defined_here(obj, module) -> bool:
    return getattr(obj, "__module__", None) == module.__name__


def public_names(module) -> list[tuple[str, object]]:
    """``(name, object)`` of the public functions and classes of ``module``."""
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n, v in vars(module).items()
                 if not n.startswith("_") and (is_function(v) or inspect.isclass(v)) and _defined_here(v, module)]
    out = []
    for n in names:
        v = getattr(module, n)
        if (is_function(v) or inspect.isclass(v)) and str(getattr(v, "__module__", "")).startswith("permsolve"):
            out.append((n, v))
    return out


def is_function(obj) -> bool:
    """A plain function, or one wrapped by a decorator that keeps ``__wrapped__`` (``lru_cache``)."""
    return not inspect.isclass(obj) and inspect.isfunction(inspect.unwrap(obj))


def repo_path(module_name: str) -> str:
    """The repository file of an installed module (``permsolve.solvers.greedy`` -> ``solvers/greedy.py``)."""
    mod = importlib.import_module(module_name)
    path = Path(mod.__file__).resolve()
    try:
        return path.relative_to(ROOT).as_posix()
    except ValueError:                     # not an editable install: map the installed layout back
        parts = module_name.split(".")
        for pkg, src in PACKAGE_DIRS.items():
            if module_name == pkg or module_name.startswith(pkg + "."):
                rest = parts[len(pkg.split(".")):]
                tail = "/".join(rest) + ("/__init__.py" if path.name == "__init__.py" else ".py")
                return f"{src}/{tail}" if rest else f"{src}/__init__.py"
        return str(path)


@functools.lru_cache(maxsize=None)
def definitions() -> dict[str, tuple[object, str]]:
    """Every public definition once, under the dotted name where it is defined: name -> (object, file)."""
    out = {}
    for name in public_modules():
        mod = importlib.import_module(name)
        for _, obj in public_names(mod):
            key = f"{obj.__module__}.{obj.__qualname__}"
            if key not in out:
                out[key] = (obj, repo_path(obj.__module__))
    return dict(sorted(out.items()))


# ----------------------------------------------------------------- the checks
def own_doc(obj) -> str | None:
    """The docstring written for ``obj`` itself (a dataclass's generated signature does not count)."""
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else getattr(obj, "__doc__", None)
    if inspect.isclass(obj) and dataclasses.is_dataclass(obj) and doc and doc.startswith(obj.__name__ + "("):
        return None                        # dataclasses write ``Name(field: type, ...)`` when there is none
    return inspect.cleandoc(doc) if doc and doc.strip() else None


def sections(doc: str) -> dict[str, str]:
    """numpydoc sections of a (cleaned) docstring: header -> body."""
    heads = list(_SECTION.finditer(doc))
    return {m.group(1): doc[m.end():heads[i + 1].start() if i + 1 < len(heads) else len(doc)]
            for i, m in enumerate(heads)}


def summary_problem(doc: str | None) -> str | None:
    """What is wrong with the summary line of ``doc``, or None."""
    if doc is None:
        return "no docstring"
    lines = doc.splitlines()
    if not lines[0].strip():
        return "the docstring does not start with a summary line"
    if len(lines) > 1 and lines[1].strip():
        return "the summary is not one line (the second line is not blank)"
    return None


def parameters(obj) -> list[str]:
    """The parameters a caller passes (``self``/``cls`` left out).

    A class counts only the parameters of a constructor of its own (``__init__`` or ``__new__``
    in its ``__dict__``, as a dataclass has): an inherited one is documented where it is defined.
    """
    if inspect.isclass(obj) and not ({"__init__", "__new__"} & set(vars(obj))):
        return []
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):        # a builtin base's constructor (an exception, say)
        return []
    names = list(sig.parameters)
    if is_function(obj) and "." in obj.__qualname__ and names and names[0] in ("self", "cls"):
        names = names[1:]                  # a method (module-level functions keep a parameter named cls)
    return names


def _body_returns(fn) -> tuple[bool, bool]:
    """(returns a value, yields) from the source of ``fn``, nested definitions left out."""
    try:
        src = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        return False, False
    tree = ast.parse(src)
    top = tree.body[0]
    returns = yields = False
    todo = list(ast.iter_child_nodes(top))
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Return) and node.value is not None and not (
                isinstance(node.value, ast.Constant) and node.value.value is None):
            returns = True
        if isinstance(node, (ast.Yield, ast.YieldFrom)):
            yields = True
        todo.extend(ast.iter_child_nodes(node))
    return returns, yields


def returns_something(fn) -> tuple[bool, bool]:
    """(returns a value, is a generator) for function ``fn``."""
    returns, yields = _body_returns(fn)
    ann = inspect.signature(fn).return_annotation
    if ann is not inspect.Signature.empty and ann not in (None, "None", type(None)):
        returns = True
    return returns or yields, yields or inspect.isgeneratorfunction(fn)


def members(cls) -> list[tuple[str, str | None]]:
    """Public methods, properties and nested classes defined in class ``cls``: (name, docstring).

    A method that overrides a documented one of a base class inherits its docstring
    (``inspect.getdoc``), as the reader of the API pages sees it.
    """
    out = []
    for name, v in vars(cls).items():
        if name.startswith("_"):
            continue
        if inspect.isclass(v):
            out.append((name, own_doc(v)))
        elif isinstance(v, functools.cached_property):
            out.append((name, inspect.getdoc(v.func)))
        elif isinstance(v, (staticmethod, classmethod, property)) or is_function(v):
            out.append((name, inspect.getdoc(getattr(cls, name) if not isinstance(v, property) else v)))
    return out


def problems(obj) -> list[str]:
    """Everything the public definition ``obj`` lacks (empty: it passes)."""
    doc = own_doc(obj)
    found = []
    s = summary_problem(doc)
    if s:
        found.append(s)
    if doc is None:
        return found
    text = doc
    if inspect.isclass(obj) and "__init__" in vars(obj) and own_doc(obj.__init__):
        text = doc + "\n\n" + own_doc(obj.__init__)     # mkdocs merges __init__ into the class
    secs = sections(text)
    params = parameters(obj)
    if params:
        ok = {"Parameters"} | ({"Attributes"} if inspect.isclass(obj) and dataclasses.is_dataclass(obj) else set())
        if not ok & set(secs):
            found.append(f"no Parameters section (takes {', '.join(params)})")
    if is_function(obj):
        returns, generator = returns_something(inspect.unwrap(obj))
        if returns and not ({"Returns", "Yields"} if generator else {"Returns"}) & set(secs):
            found.append("no Yields section" if generator else "no Returns section")
    if "Examples" not in secs:
        found.append("no Examples section")
    elif ">>>" not in secs["Examples"]:
        found.append("the Examples section has no >>> line")
    if inspect.isclass(obj):
        for name, doc_m in members(obj):
            s = summary_problem(doc_m and inspect.cleandoc(doc_m))
            if s:
                found.append(f"{name}: {s}")
    return found


# ----------------------------------------------------------------- the tests
def _params():
    out = []
    for key, (obj, path) in definitions().items():
        reason = pending_reason(path)
        marks = [pytest.mark.xfail(reason=reason, strict=False)] if reason else []
        out.append(pytest.param(key, marks=marks, id=key))
    return out


@pytest.mark.parametrize("key", _params())
def test_public_docstring(key):
    obj, path = definitions()[key]
    found = problems(obj)
    assert not found, f"{key} ({path}): " + "; ".join(found)


@pytest.mark.parametrize("key", _params())
def test_examples_are_collected(key):
    """The doctest finder of the defining module sees this definition's examples (so they are run)."""
    obj, path = definitions()[key]
    if own_doc(obj) is None or "Examples" not in sections(own_doc(obj)):
        pytest.skip("no examples (test_public_docstring reports it)")
    mod = importlib.import_module(obj.__module__)
    tests = {t.name: t for t in doctest.DocTestFinder().find(mod)}
    name = f"{obj.__module__}.{obj.__qualname__}"
    assert name in tests and tests[name].examples, f"doctest does not find the examples of {name} ({path})"


def test_every_module_is_doctested():
    """``make test`` runs the examples of every module: ``--doctest-modules`` over ``permsolve/``, and
    ``tests/test_docstrings.py`` over ``permsolve.solvers`` and ``permsolve.problems``."""
    text = (ROOT / "pyproject.toml").read_text()
    block = text.split("[tool.pytest.ini_options]", 1)[1].split("\n[", 1)[0]
    assert "--doctest-modules" in block, "pytest no longer collects the doctests of permsolve/"
    assert re.search(r"testpaths\s*=\s*\[[^]]*\"permsolve\"", block), "permsolve/ is not in pytest's testpaths"
    from tests import test_docstrings

    wanted = {f"{p}.{m.name}" for p in ("permsolve.solvers", "permsolve.problems")
              for m in pkgutil.iter_modules(importlib.import_module(p).__path__)}
    missing = wanted - set(test_docstrings.MODULES)
    assert not missing, f"tests/test_docstrings.py does not run the examples of {sorted(missing)}"


def audit() -> dict[str, tuple[int, int, int]]:
    """Per file: (public definitions, lacking a docstring, failing a check)."""
    out = {}
    for key, (obj, path) in definitions().items():
        n, nodoc, bad = out.get(path, (0, 0, 0))
        found = problems(obj)
        out[path] = (n + 1, nodoc + (own_doc(obj) is None), bad + bool(found))
    return out


if __name__ == "__main__":                 # the audit: python tests/test_public_docstrings.py [-v]
    sys.path.insert(0, str(ROOT))
    verbose = "-v" in sys.argv
    table = audit()
    tot = [0, 0, 0]
    print(f"{'file':40s} {'public':>6s} {'no doc':>6s} {'failing':>7s}")
    for path, (n, nodoc, bad) in sorted(table.items()):
        tot = [a + b for a, b in zip(tot, (n, nodoc, bad))]
        mark = "  (pending)" if pending_reason(path) else ""
        print(f"{path:40s} {n:6d} {nodoc:6d} {bad:7d}{mark}")
    print(f"{'total':40s} {tot[0]:6d} {tot[1]:6d} {tot[2]:7d}")
    if verbose:
        for key, (obj, path) in definitions().items():
            found = problems(obj)
            if found:
                print(f"{key} ({path}): " + "; ".join(found))

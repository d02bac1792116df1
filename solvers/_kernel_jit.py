"""How the solvers' numba kernels are compiled, and how a kernel split over several files
finds its other parts.

A kernel file takes its decorator from :func:`kernel_jit` and the other files
of its kernel from :func:`kernel_sibling`.  Loaded normally, the decorator is
``numba.njit`` (cached on disk) and a sibling is the compiled module; loaded
as its plain-Python copy (``_NOJIT = True`` in its namespace, see
:func:`permsolve.solvers._common.load_kernel_module`), the decorator does
nothing and the siblings are plain-Python copies too, so the whole kernel runs
as Python.

numba's on-disk cache judges a function fresh by its own file only, so a
function compiled with helpers from another file would keep running their old
code after that file changed (numba's documented limitation).  A kernel file
that loads siblings therefore gets a cache stamp that also covers the content
of every file it loads, directly or not (:func:`kernel_sibling` records them;
a cache locator put in front of numba's own ones adds them).
"""
from __future__ import annotations

import hashlib
import os
from typing import Callable

__all__ = ["kernel_jit", "kernel_sibling"]

#: kernel file -> the kernel files it loads, directly or through another (absolute paths)
_DEPENDS: dict[str, set[str]] = {}
_LOCATOR: list = []

#: the options every kernel is compiled with (forcing inline="always" on the anneal
#: kernel's helpers gained < 5 % and cost 40 % more compile time)
NJIT_OPTIONS = {"cache": True, "nogil": True, "error_model": "numpy"}


def _kind(namespace: dict) -> str:
    return "python" if namespace.get("_NOJIT", False) else "numba"


def kernel_jit(namespace: dict, **options) -> Callable:
    """The decorator of the kernel file whose ``globals()`` is ``namespace``.

    Parameters
    ----------
    namespace : the kernel module's ``globals()``
    **options : numba options added to (or replacing) :data:`NJIT_OPTIONS`

    Returns
    -------
    callable
        ``numba.njit(**NJIT_OPTIONS, **options)``, or the identity when the
        module is the plain-Python copy

    Examples
    --------
    >>> njit = kernel_jit({"_NOJIT": True})
    >>> njit(len) is len
    True
    """
    if _kind(namespace) == "python":
        return lambda f: f
    import numba

    _install_locator()
    return numba.njit(**{**NJIT_OPTIONS, **options})


def kernel_sibling(namespace: dict, stem: str):
    """Another file ``stem`` of the same kernel, of the same kind (compiled or plain Python).

    Parameters
    ----------
    namespace : the calling kernel module's ``globals()``
    stem : the sibling's module name in ``permsolve.solvers`` (``"_anneal_topk"``)

    Returns
    -------
    module
        ``permsolve.solvers.<stem>``, or its plain-Python copy (one per process)
        when the caller is one

    Examples
    --------
    >>> kernel_sibling({"_NOJIT": True}, "_anneal_topk").__name__
    'permsolve.solvers._anneal_topk_python'
    """
    from ._common import load_kernel_module

    mod = load_kernel_module(stem, _kind(namespace), {})
    here, there = namespace.get("__file__"), getattr(mod, "__file__", None)
    if here and there:
        there = os.path.abspath(there)
        _DEPENDS.setdefault(os.path.abspath(here), set()).update({there} | _DEPENDS.get(there, set()))
    return mod


def _content(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _install_locator() -> None:
    """Put a cache locator in front of numba's that adds, to the stamp of a function in a kernel
    file with siblings, the content of those siblings (once per process).

    It wraps the locator numba would have chosen (same cache folder, same file names), so only the
    freshness test changes.  Written against numba 0.68's caching internals; where they differ,
    nothing is installed and numba caches as it always does (per file).
    """
    if _LOCATOR:
        return
    try:
        from numba.core import caching

        impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl
        base = caching._CacheLocator
        impl._locator_classes       # noqa: B018 - fails where the internals moved
    except (ImportError, AttributeError):     # pragma: no cover - other numba versions
        _LOCATOR.append(None)
        return

    class KernelGroupLocator(base):
        """numba's locator for a function, with the kernel files its file loads in its stamp."""

        def __init__(self, inner, depends):
            self._inner = inner
            self._depends = sorted(depends)
            self._py_file = getattr(inner, "_py_file", None)   # numba's warnings read it

        def ensure_cache_path(self):
            self._inner.ensure_cache_path()

        def get_cache_path(self):
            return self._inner.get_cache_path()

        def get_disambiguator(self):
            return self._inner.get_disambiguator()

        def get_source_stamp(self):
            return (self._inner.get_source_stamp(), tuple((os.path.basename(f), _content(f)) for f in self._depends))

        @classmethod
        def from_function(cls, py_func, py_file):
            depends = _DEPENDS.get(os.path.abspath(py_file))
            if not depends:
                return None
            for other in impl._locator_classes:
                if other is not cls:
                    inner = other.from_function(py_func, py_file)
                    if inner is not None:
                        return cls(inner, depends)
            return None

    impl._locator_classes.insert(0, KernelGroupLocator)
    _LOCATOR.append(KernelGroupLocator)

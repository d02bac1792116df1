"""Seeded random importance matrices.

Every generator returns a non-negative ``(m, n)`` float64 matrix, the
importance ``|W|`` of a synthetic weight matrix ``W``, and is a pure function of
its arguments (same seed, same matrix, on every machine).

Examples
--------
>>> S = gaussian(4, 6, seed=1)
>>> S.shape, bool((S >= 0).all())
((4, 6), True)
>>> bool((gaussian(4, 6, seed=1) == S).all())
True
"""
from __future__ import annotations

import numpy as np

__all__ = ["gaussian", "student_t", "scaled", "lowrank", "uniform", "GENERATORS"]


def gaussian(m: int, n: int, *, seed: int = 0) -> np.ndarray:
    """``|W|`` with i.i.d. standard normal ``W``.

    Parameters
    ----------
    m, n : int
        Shape.
    seed : int
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    (m, n) float64 array
        The importance, ``>= 0``.

    Examples
    --------
    >>> gaussian(2, 3, seed=0).shape
    (2, 3)
    """
    return np.abs(np.random.default_rng(seed).standard_normal((m, n)))


def student_t(m: int, n: int, *, df: float = 3.0, seed: int = 0) -> np.ndarray:
    """``|W|`` with i.i.d. Student-t ``W`` (heavy tails: a few huge weights).

    Parameters
    ----------
    m, n : int
        Shape.
    df : float
        Degrees of freedom (smaller: heavier tails).
    seed : int
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    (m, n) float64 array
        The importance, ``>= 0``.

    Examples
    --------
    >>> float(student_t(64, 64, df=2, seed=0).max()) > float(gaussian(64, 64, seed=0).max())
    True
    """
    return np.abs(np.random.default_rng(seed).standard_t(df, size=(m, n)))


def scaled(m: int, n: int, *, sigma: float = 0.5, seed: int = 0) -> np.ndarray:
    """``|W|`` with ``W[i, j] = r_i c_j z_ij``, lognormal row and column factors.

    Trained layers look like this: some output channels and some input
    features carry much more weight than others.

    Parameters
    ----------
    m, n : int
        Shape.
    sigma : float
        Standard deviation of the log of the row and column factors.
    seed : int
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    (m, n) float64 array
        The importance, ``>= 0``.

    Examples
    --------
    >>> S = scaled(32, 16, sigma=1.0, seed=0)
    >>> float(S.sum(axis=1).max() / S.sum(axis=1).min()) > 3
    True
    """
    rng = np.random.default_rng(seed)
    r = rng.lognormal(0.0, sigma, size=(m, 1))
    c = rng.lognormal(0.0, sigma, size=(1, n))
    return np.abs(rng.standard_normal((m, n))) * r * c


def lowrank(m: int, n: int, *, rank: int = 8, noise: float = 0.1, seed: int = 0) -> np.ndarray:
    """``|U V^T / sqrt(rank) + noise * Z|``: structured, with a few dominant directions.

    Parameters
    ----------
    m, n : int
        Shape.
    rank : int
        Rank of the structured part.
    noise : float
        Scale of the Gaussian noise added.
    seed : int
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    (m, n) float64 array
        The importance, ``>= 0``.

    Examples
    --------
    >>> lowrank(16, 8, rank=2, seed=0).shape
    (16, 8)
    """
    rng = np.random.default_rng(seed)
    U = rng.standard_normal((m, rank))
    V = rng.standard_normal((n, rank))
    return np.abs(U @ V.T / np.sqrt(rank) + noise * rng.standard_normal((m, n)))


def uniform(m: int, n: int, *, seed: int = 0) -> np.ndarray:
    """Uniform ``[0, 1)`` entries from NumPy's legacy generator: ``np.random.seed(seed); np.random.rand(m, n)``.

    The instances of NVIDIA apex's channel-permutation search (Pool & Yu 2021)
    are made this way (the 128x64 matrix of seed 1, the 32x16 ones of seeds
    0..24), so their published values apply to these matrices as they are.

    Parameters
    ----------
    m, n : int
        Shape.
    seed : int
        Seed of ``numpy.random.RandomState`` (the legacy generator).

    Returns
    -------
    (m, n) float64 array
        Entries in ``[0, 1)``.

    Examples
    --------
    >>> S = uniform(128, 64, seed=1)
    >>> bool(np.array_equal(S, np.random.RandomState(1).rand(128, 64)))
    True
    """
    return np.random.RandomState(seed).rand(m, n)


#: family name -> generator
GENERATORS = {"gauss": gaussian, "studentt": student_t, "scaled": scaled, "lowrank": lowrank, "uniform": uniform}

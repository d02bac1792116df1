"""Importance metrics: how much each weight matters.

All return a non-negative matrix of the weight's matrix view: a Linear weight
``(out, in)`` as it is, a Conv weight ``(C_out, C_in, kh, kw)`` as
``(C_out, C_in*kh*kw)``.  Rows are output channels.

Examples
--------
>>> import numpy as np
>>> W = np.array([[1.0, -2.0], [0.5, 0.0]])
>>> importance(W, "l1")
array([[1. , 2. ],
       [0.5, 0. ]])
>>> importance(W, "l2")
array([[1.  , 4.  ],
       [0.25, 0.  ]])
"""
from __future__ import annotations

import numpy as np

__all__ = ["METRICS", "importance", "matrix_view"]

METRICS = {
    "l1": "|W| (TileTrans's default)",
    "l2": "W^2",
    "taylor": "(W*G)^2 from a gradient G (first-order Taylor)",
    "activation": "|W| times the input-activation norm of each column (Wanda)",
    "none": "the matrix is the importance itself (must be finite and >= 0)",
}


def matrix_view(W) -> np.ndarray:
    """2-D view of a weight: rows are output channels, the rest is flattened.

    Parameters
    ----------
    W : array_like
        A weight of 2 or more dimensions (a conv weight ``(C_out, C_in, kh, kw)``).

    Returns
    -------
    (W.shape[0], -1) float64 array
        ``W`` reshaped, rows first.

    Examples
    --------
    >>> matrix_view(np.zeros((8, 3, 2, 2))).shape
    (8, 12)
    """
    W = np.asarray(W, dtype=np.float64)
    if W.ndim < 2:
        raise ValueError(f"a weight matrix needs at least 2 dimensions, got shape {W.shape}")
    return W.reshape(W.shape[0], -1)


def importance(W, metric: str = "l1", *, grad=None, act_norm=None) -> np.ndarray:
    """Importance matrix of weight ``W`` under ``metric``.

    Parameters
    ----------
    W : array, 2-D or more (conv weights are flattened per output channel)
    metric : one of :data:`METRICS`
    grad : gradient of the loss w.r.t. ``W`` (``taylor``), same shape as ``W``;
        TileTrans averages it over an epoch.
    act_norm : per-input-column L2 norm of the layer's input activations
        (``activation``), length ``W.reshape(len(W), -1).shape[1]``.

    Returns
    -------
    (m, n) float64 array
        The importance, ``>= 0``, of the matrix view of ``W`` (:func:`matrix_view`).

    Examples
    --------
    >>> W = np.array([[1.0, -2.0], [3.0, 0.5]])
    >>> importance(W, "taylor", grad=np.full((2, 2), 0.5))
    array([[0.25  , 1.    ],
           [2.25  , 0.0625]])
    >>> importance(W, "activation", act_norm=[2.0, 1.0])
    array([[2. , 2. ],
           [6. , 0.5]])
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known metrics: {', '.join(METRICS)}")
    M = matrix_view(W)
    if not np.all(np.isfinite(M)):
        raise ValueError("weight contains NaN or inf")
    if metric == "l1":
        return np.abs(M)
    if metric == "l2":
        return M * M
    if metric == "taylor":
        if grad is None:
            raise ValueError("metric 'taylor' needs the gradient (grad=)")
        G = matrix_view(grad)
        if G.shape != M.shape:
            raise ValueError(f"gradient shape {G.shape} does not match weight {M.shape}")
        return (M * G) ** 2
    if metric == "activation":
        if act_norm is None:
            raise ValueError("metric 'activation' needs the input-activation norms (act_norm=)")
        a = np.asarray(act_norm, dtype=np.float64).ravel()
        if a.shape != (M.shape[1],):
            raise ValueError(f"act_norm has {a.size} entries, the weight has {M.shape[1]} columns")
        return np.abs(M) * np.abs(a)[None, :]
    if (M < 0).any():
        raise ValueError("metric 'none' needs importance >= 0: the matrix has negative entries (use --metric l1)")
    return M

"""The ``auto`` solver's choice, re-exported for the benchmark suite.

The choice itself lives with the solver, :mod:`permsolve.solvers.auto`
(which reads its table from the option, ``$PERMSOLVE_AUTO_TABLE`` or the
copy shipped as ``permsolve/data/auto.json``); ``permsolve report`` writes
new tables with :func:`permsolve.bench.report.auto_table`.

Examples
--------
>>> import numpy as np
>>> from permsolve import TileProblem
>>> choose(TileProblem.from_matrix(np.ones((8, 8)), tile=(2, 2), sparsity=0.5), 1.0, table={"entries": []})[0]
'hungarian'
"""
from __future__ import annotations

from permsolve.solvers.auto import DEFAULT, ENV_VAR, choose, load_table, problem_features, table_path

__all__ = ["choose", "load_table", "table_path", "problem_features", "DEFAULT", "ENV_VAR"]

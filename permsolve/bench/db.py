"""The SQLite results database: one row per run, one transaction per row.

The sweep's client process is the only writer.  Each finished cell is
inserted and committed in its own transaction (WAL journal, ``synchronous=FULL``),
so killing a sweep at any moment, SIGKILL included, loses no finished cell and
leaves no half-written row.  ``cell`` is UNIQUE: a cell is stored at most once,
which is what makes a sweep resumable.

Examples
--------
>>> import tempfile, os
>>> db = ResultsDB(os.path.join(tempfile.mkdtemp(), "r.sqlite"))
>>> db.insert({"cell": "a|greedy|1|0|{}", "instance": "a", "solver": "greedy", "budget": 1.0, "seed": 0,
...            "status": "ok", "value": 1.0, "trace": [[0.0, 0.5], [0.1, 1.0]]})
True
>>> db.insert({"cell": "a|greedy|1|0|{}", "instance": "a", "solver": "greedy", "budget": 1.0, "seed": 0,
...            "status": "ok", "value": 2.0})
False
>>> db.finished_cells()
{'a|greedy|1|0|{}'}
>>> db.rows()[0]["trace"]
[[0.0, 0.5], [0.1, 1.0]]
"""
from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

__all__ = ["ResultsDB", "COLUMNS"]

#: column name -> SQL type (JSON columns are TEXT)
COLUMNS = {
    "cell": "TEXT NOT NULL UNIQUE",
    "sweep": "TEXT",
    "instance": "TEXT NOT NULL",
    "family": "TEXT",
    "rows": "INTEGER",
    "cols": "INTEGER",
    "tile": "TEXT",
    "sparsity": "REAL",
    "mask": "TEXT",
    "axis": "TEXT",
    "solver": "TEXT NOT NULL",
    "options": "TEXT",
    "budget": "REAL",
    "seed": "INTEGER",
    "status": "TEXT NOT NULL",        # ok | error
    "error": "TEXT",
    "value": "REAL",
    "bound": "REAL",                  # the run's bound (a solver's proof when tighter)
    "problem_bound": "REAL",          # TileProblem.bound
    "known_optimum": "REAL",          # planted instances
    "total": "REAL",
    "optimal": "INTEGER",
    "seconds": "REAL",                # SolveResult.seconds
    "wall": "REAL",                   # the worker's wall time, problem building included
    "nit": "INTEGER",
    "trace": "TEXT",                  # JSON [[t, best], ...]
    "info": "TEXT",                   # JSON
    "recipe": "TEXT",                 # JSON instance recipe
    "config": "TEXT",                 # JSON sweep config
    "env": "TEXT",                    # JSON: versions, CPU, host
    "started_at": "TEXT",
    "finished_at": "TEXT",
}
JSON_COLUMNS = ("options", "trace", "info", "recipe", "config", "env")


class ResultsDB:
    """Results database at ``path`` (created with its parent folder if missing).

    Parameters
    ----------
    path : str or Path
        The SQLite file; a file that is not a permsolve results database is refused
        (``ValueError``) and left as it was.

    Examples
    --------
    >>> import tempfile, os
    >>> with ResultsDB(os.path.join(tempfile.mkdtemp(), "sub", "r.sqlite")) as db:
    ...     db.insert({"cell": "k", "instance": "a", "solver": "greedy", "status": "error", "error": "E: x"})
    ...     db.count(), db.delete_errors(["k"]), db.count()
    True
    (1, 1, 0)
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if self.path.is_dir():
            raise ValueError(f"{self.path} is a folder, not a results database file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(str(self.path), timeout=60, isolation_level=None)
        try:
            # SQLite reads the header here: a file that is not a database (text, garbage, a damaged
            # header) fails before anything is written to it, so it is left as it was
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            cols = ",\n  ".join(f'"{k}" {v}' for k, v in COLUMNS.items())
            self.conn.execute(f"CREATE TABLE IF NOT EXISTS runs (\n  id INTEGER PRIMARY KEY AUTOINCREMENT,\n  {cols})")
            self.conn.execute("CREATE INDEX IF NOT EXISTS runs_instance ON runs(instance, solver, budget)")
        except sqlite3.DatabaseError as e:
            self.conn.close()
            raise ValueError(f"{self.path} is not a permsolve results database (SQLite: {e})") from None

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def finished_cells(self) -> set[str]:
        """Keys of every stored cell (finished, whatever its status)."""
        return {r[0] for r in self.conn.execute("SELECT cell FROM runs")}

    def insert(self, row: dict) -> bool:
        """Store one run in its own transaction; False if its cell is already stored."""
        unknown = set(row) - set(COLUMNS)
        if unknown:
            raise ValueError(f"unknown result column(s): {', '.join(sorted(unknown))}")
        vals = [json.dumps(v, default=_jsonable) if k in JSON_COLUMNS and v is not None else v
                for k, v in row.items()]
        sql = f"INSERT INTO runs ({', '.join(chr(34) + k + chr(34) for k in row)}) VALUES ({', '.join('?' * len(row))})"
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute(sql, vals)
            self.conn.execute("COMMIT")
            return True
        except sqlite3.IntegrityError:
            self.conn.execute("ROLLBACK")
            return False
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def delete_errors(self, keys) -> int:
        """Remove the stored errors among ``keys`` (one transaction) so they run again; returns how many."""
        keys = list(keys)
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            n = 0
            for i in range(0, len(keys), 500):
                chunk = keys[i:i + 500]
                n += self.conn.execute(f"DELETE FROM runs WHERE status != 'ok' AND cell IN ({','.join('?' * len(chunk))})",
                                       chunk).rowcount
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return n

    def rows(self, where: str = "", params: tuple = ()) -> list[dict]:
        """All rows (optionally filtered by an SQL ``where`` clause), JSON columns decoded."""
        cur = self.conn.execute(f"SELECT * FROM runs {('WHERE ' + where) if where else ''} ORDER BY id", params)
        names = [d[0] for d in cur.description]
        out = []
        for r in cur:
            d = dict(zip(names, r))
            for k in JSON_COLUMNS:
                if d.get(k) is not None:
                    d[k] = json.loads(d[k])
            out.append(d)
        return out

    def count(self) -> int:
        """Number of stored rows."""
        return self.conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]


def _jsonable(x):
    try:
        import numpy as np

        if isinstance(x, np.ndarray):
            return x.tolist()
        if isinstance(x, np.generic):
            return x.item()
    except ImportError:  # pragma: no cover
        pass
    return str(x)

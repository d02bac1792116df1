"""Incremental move evaluation for the ``anneal`` solver (numba kernel): the driver.

The state of a problem is flattened into a few 1-D arrays so that one compiled
function handles any number of members, permutations and units; the arrays
travel in four named tuples (:class:`ProblemData`, :class:`MaskState`,
:class:`WalkState`, :class:`Scratch`).  Per member the kernel keeps

* ``T``: the tile-score matrix, ``mb x nb``, in permuted coordinates;
* ``R``: the row profile (``R[x, b]`` = original row ``x`` inside column block
  ``b`` under the current column permutation) when the rows are permuted;
* ``C``: the column profile (``C[y, a]`` = original column ``y`` inside row
  block ``a`` under the current row permutation) when the columns are permuted;
* each group's kept sum (``ksum``) and its scores in sorted order: the
  row-balanced mask has one group per tile row (keep ``kb``), fully sorted
  (``sv``, ``sid``) with each tile's rank (``pos``); the global mask has one
  group (all tiles, keep ``k``) of which only a *band* around the top-``k``
  boundary is kept sorted, by (score, id): every tile scoring in
  ``[lo, hi]`` (``bandf``), with its size and the tiles above it in ``bandn``.

The code is in four files, each loaded by the one above it:

* this one: the named tuples and :func:`run_moves` (pick a move, sum its
  bindings' deltas, the Metropolis test, commit);
* :mod:`permsolve.solvers._anneal_eval`: one swap on one binding (a member
  and the axis a permutation drives), evaluated and applied, and the layout
  of the member table (``M_*``) and the stats counters (``ST_*``);
* :mod:`permsolve.solvers._anneal_band`: the global mask's sorted band;
* :mod:`permsolve.solvers._anneal_topk`: exact top-``k`` sums after some
  scores change (a partly changed group from its sorted scores, a wholly
  changed one against its old threshold; exact, since ties do not change a
  top-``k`` *sum*; a global-mask move whose answer depends on a tile outside
  the band is recomputed from scratch, rarely).

The sorted scores and the profiles are updated only on acceptance.

Loading this file with ``_NOJIT = True`` in its namespace gives the same code
as plain Python (``kernel="python"``: slow, for debugging and for checking the
compiled code); it then loads the plain-Python copies of the other three.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ._kernel_jit import kernel_jit, kernel_sibling

njit = kernel_jit(globals())
_topk = kernel_sibling(globals(), "_anneal_topk")
_band = kernel_sibling(globals(), "_anneal_band")
_eval = kernel_sibling(globals(), "_anneal_eval")


def _take(mod, names: str) -> list:
    return [getattr(mod, n) for n in names.split()]


# the layout and the pieces, under the names this module always had (the solver, the tests and
# the benchmarks use them on this module)
(M_M, M_N, M_H, M_W, M_MB, M_NB, M_SOFF, M_TOFF, M_ROFF, M_COFF, M_GLOBAL, M_K, M_GOFF, M_FIELDS,
 ST_UNUSED, ST_ACCEPTED, ST_IMPROVED, ST_MOVES, ST_FALLBACK, ST_REBUILD, N_STATS,
 _eval_binding, _apply_binding, _move_one, _resort_group, _slot_of) = _take(
    _eval, "M_M M_N M_H M_W M_MB M_NB M_SOFF M_TOFF M_ROFF M_COFF M_GLOBAL M_K M_GOFF M_FIELDS "
           "ST_UNUSED ST_ACCEPTED ST_IMPROVED ST_MOVES ST_FALLBACK ST_REBUILD N_STATS "
           "_eval_binding _apply_binding _move_one _resort_group _slot_of")
(BAND_HALF, BAND_MARGIN, BAND_MAX, B_SIZE, B_ABOVE, band_rebuild, _band_apply, _lex_lower) = _take(
    _band, "BAND_HALF BAND_MARGIN BAND_MAX B_SIZE B_ABOVE band_rebuild _band_apply _lex_lower")
(INF, _sort_asc, _is_changed, _walk, _topk_cases, _topk_merge, _topk_band, _topk_full, _rank_split,
 _topk_fresh) = _take(_topk, "INF _sort_asc _is_changed _walk _topk_cases _topk_merge _topk_band _topk_full "
                             "_rank_split _topk_fresh")


class ProblemData(NamedTuple):
    """What the moves read and never write: the problem's layout and importance.

    Attributes
    ----------
    mem : int64 ``(members, M_FIELDS)``, the member table (columns ``M_*``)
    perm_off : int64 ``(perms + 1,)``, where each permutation starts in ``WalkState.perm``
    perm_cumw : float64 ``(perms,)``, cumulative chance of moving each permutation (last entry 2)
    bind_off : int64 ``(perms + 1,)``, each permutation's bindings (``bind_*[bind_off[i]:bind_off[i + 1]]``)
    bind_mem, bind_axis, bind_unit : int64 ``(bindings,)``, a binding's member, axis (0 rows, 1 columns)
        and unit (elements per position)
    bind_soff, bind_choff, bind_goff : int64 ``(bindings,)``, its offsets into ``Scratch.slots``,
        ``Scratch.ch_id``/``ch_val`` and ``Scratch.g_val``
    S : float64, every member's importance, flattened (member ``i`` from ``mem[i, M_SOFF]``)

    Examples
    --------
    >>> import numpy as np
    >>> from permsolve import TileProblem
    >>> from permsolve.solvers.anneal import AnnealState
    >>> p = TileProblem.from_matrix(np.random.default_rng(0).random((8, 8)), tile=(2, 2), sparsity=0.5)
    >>> pd = AnnealState(p, p.identity()).data
    >>> pd.mem.shape == (1, M_FIELDS), pd.perm_off.tolist()
    (True, [0, 8])
    """
    mem: np.ndarray
    perm_off: np.ndarray
    perm_cumw: np.ndarray
    bind_off: np.ndarray
    bind_mem: np.ndarray
    bind_axis: np.ndarray
    bind_unit: np.ndarray
    bind_soff: np.ndarray
    bind_choff: np.ndarray
    bind_goff: np.ndarray
    S: np.ndarray


class MaskState(NamedTuple):
    """Per member, the tile scores, profiles and mask bookkeeping that a move updates (on acceptance).

    Attributes
    ----------
    T : float64, tile scores in permuted coordinates (member ``i`` from ``mem[i, M_TOFF]``, ``mb x nb``)
    R, C : float64, row and column profiles (from ``mem[i, M_ROFF]``, ``mem[i, M_COFF]``)
    sv, sid, pos : float64, int64, int64, laid out like ``T``: the sorted scores of each group and
        their tile ids; ``pos``: each tile's rank in its group (row-balanced members)
    ksum : float64, kept sum of each group (member ``i``'s from ``mem[i, M_GOFF]``)
    bandf : float64 ``(members, 2)``, a global-mask member's band thresholds ``[lo, hi]``
    bandn : int64 ``(members, 2)``, its band's size and the tiles above it (``B_SIZE``, ``B_ABOVE``)

    Examples
    --------
    >>> import numpy as np
    >>> from permsolve import TileProblem
    >>> from permsolve.solvers.anneal import AnnealState
    >>> p = TileProblem.from_matrix(np.random.default_rng(0).random((8, 8)), tile=(2, 2), sparsity=0.5)
    >>> ms = AnnealState(p, p.identity()).masks
    >>> bool(abs(ms.ksum[0] - p.evaluate()) < 1e-12), int(ms.bandn[0, B_SIZE]) == 16
    (True, True)
    """
    T: np.ndarray
    R: np.ndarray
    C: np.ndarray
    sv: np.ndarray
    sid: np.ndarray
    pos: np.ndarray
    ksum: np.ndarray
    bandf: np.ndarray
    bandn: np.ndarray


class WalkState(NamedTuple):
    """Where the walk is, the best point it has seen, and its counters.

    Attributes
    ----------
    perm : int64, every permutation, concatenated (``ProblemData.perm_off``)
    best_perm : int64, the same for the best value seen
    values : float64 ``(2,)``, ``[current, best]`` kept importance
    stats : int64 ``(N_STATS,)``, counters (``ST_*``: accepted, improved, moves, band fallbacks, rebuilds)

    Examples
    --------
    >>> import numpy as np
    >>> from permsolve import TileProblem
    >>> from permsolve.solvers.anneal import AnnealState
    >>> p = TileProblem.from_matrix(np.random.default_rng(0).random((8, 8)), tile=(2, 2), sparsity=0.5)
    >>> st = AnnealState(p, p.identity())
    >>> st.run(np.random.default_rng(1).random((50, 4)), 1.0, 1.0) > 0
    True
    >>> int(st.walk.stats[ST_MOVES]), bool(st.walk.values[1] >= st.walk.values[0])
    (50, True)
    """
    perm: np.ndarray
    best_perm: np.ndarray
    values: np.ndarray
    stats: np.ndarray


class Scratch(NamedTuple):
    """Work arrays of one move; nothing in them outlives an accepted move.

    Attributes
    ----------
    bind_ns : int64 ``(bindings,)``, changed slots of each binding of the move
    slots, ch_id, ch_val, g_val : each binding's changed tile rows (columns), changed tiles with
        their new scores, and the new kept sums (from ``ProblemData.bind_soff`` etc.)
    buf, buf2, gids, gvals, order, tmp_v, tmp_i, hole : scratch of the top-``k`` and band updates
        (``hole`` is kept all zero between uses)

    Examples
    --------
    >>> import numpy as np
    >>> from permsolve import TileProblem
    >>> from permsolve.solvers.anneal import AnnealState
    >>> p = TileProblem.from_matrix(np.random.default_rng(0).random((8, 8)), tile=(2, 2), sparsity=0.5)
    >>> AnnealState(p, p.identity()).scratch.bind_ns.tolist()   # one binding: the rows
    [0]
    """
    bind_ns: np.ndarray
    slots: np.ndarray
    ch_id: np.ndarray
    ch_val: np.ndarray
    g_val: np.ndarray
    buf: np.ndarray
    buf2: np.ndarray
    gids: np.ndarray
    gvals: np.ndarray
    order: np.ndarray
    tmp_v: np.ndarray
    tmp_i: np.ndarray
    hole: np.ndarray


@njit
def run_moves(pd, ms, ws, sc, rand, temp, alpha, probe, deltas):
    """Run one Metropolis move per row of ``rand`` (or, with ``probe``, only record their deltas).

    Parameters
    ----------
    pd, ms, ws, sc : the state (:class:`ProblemData`, :class:`MaskState`, :class:`WalkState`,
        :class:`Scratch`); ``ms``, ``ws`` and ``sc`` are updated in place
    rand : float64 ``(n, 4)``, four uniforms per move: which permutation, the two positions,
        the acceptance draw
    temp, alpha : the temperature of the first move, and its factor after each move
    probe : True: evaluate the moves without applying any, their deltas into ``deltas``
    deltas : float64 ``(n,)`` with ``probe`` (else unused)

    Returns
    -------
    float
        the temperature after the last move.  ``ws.values = [current, best]`` is updated;
        ``ws.best_perm`` gets a copy of ``ws.perm`` whenever ``best`` improves.

    Examples
    --------
    >>> import numpy as np
    >>> from permsolve import TileProblem
    >>> from permsolve.solvers.anneal import AnnealState
    >>> p = TileProblem.from_matrix(np.random.default_rng(0).random((8, 8)), tile=(2, 2), sparsity=0.5)
    >>> st = AnnealState(p, p.identity())
    >>> d = np.zeros(10)
    >>> run_moves(st.data, st.masks, st.walk, st.scratch, np.random.default_rng(1).random((10, 4)), 0.0, 1.0,
    ...           True, d) == 0.0
    True
    >>> bool(np.isfinite(d).all()), int(st.walk.stats[ST_MOVES])      # evaluated, none applied
    (True, 10)
    """
    # the arrays one by one: the helpers take them so (passing the tuples whole ran 10 % slower)
    mem, perm_off, perm_cumw, bind_off, S = pd.mem, pd.perm_off, pd.perm_cumw, pd.bind_off, pd.S
    bind_mem, bind_axis, bind_unit = pd.bind_mem, pd.bind_axis, pd.bind_unit
    bind_soff, bind_choff, bind_goff = pd.bind_soff, pd.bind_choff, pd.bind_goff
    T, R, C, sv, sid, pos, ksum, bandf, bandn = ms.T, ms.R, ms.C, ms.sv, ms.sid, ms.pos, ms.ksum, ms.bandf, ms.bandn
    perm, best_perm, values, stats = ws.perm, ws.best_perm, ws.values, ws.stats
    bind_ns, slots, ch_id, ch_val, g_val = sc.bind_ns, sc.slots, sc.ch_id, sc.ch_val, sc.g_val
    buf, buf2, gids, gvals, order, tmp_v, tmp_i, hole = (sc.buf, sc.buf2, sc.gids, sc.gvals, sc.order, sc.tmp_v,
                                                         sc.tmp_i, sc.hole)
    n_moves = rand.shape[0]
    npm = perm_cumw.shape[0]
    cur = values[0]
    best = values[1]
    for it in range(n_moves):
        r0 = rand[it, 0]
        pi = 0
        while pi < npm - 1 and r0 >= perm_cumw[pi]:
            pi += 1
        pbase = perm_off[pi]
        P = perm_off[pi + 1] - pbase
        if P < 2:
            continue
        p = int(rand[it, 1] * P)
        q = int(rand[it, 2] * (P - 1))
        if p >= P:
            p = P - 1
        if q >= P - 1:
            q = P - 2
        if q >= p:
            q += 1
        delta = 0.0
        for bi in range(bind_off[pi], bind_off[pi + 1]):
            so = bind_soff[bi]
            co = bind_choff[bi]
            go = bind_goff[bi]
            d, ns = _eval_binding(mem, bandf, bandn, bind_mem[bi], bind_axis[bi], bind_unit[bi], perm, pbase, p, q,
                                  T, R, C, sv, sid, pos, ksum, stats, slots[so:], ch_id[co:], ch_val[co:],
                                  g_val[go:], buf, buf2, gids, gvals)
            bind_ns[bi] = ns
            delta += d
        stats[ST_MOVES] += 1
        if probe:
            deltas[it] = delta
            continue
        if delta >= 0.0:
            accept = True
        elif temp > 0.0:
            accept = rand[it, 3] < math.exp(delta / temp)
        else:
            accept = False
        if accept:
            for bi in range(bind_off[pi], bind_off[pi + 1]):
                so = bind_soff[bi]
                co = bind_choff[bi]
                go = bind_goff[bi]
                _apply_binding(mem, bandf, bandn, bind_mem[bi], bind_axis[bi], bind_unit[bi], perm, pbase, p, q,
                               bind_ns[bi], S, T, R, C, sv, sid, pos, ksum, slots[so:], ch_id[co:], ch_val[co:],
                               g_val[go:], hole, order, tmp_v, tmp_i, stats)
            tmp = perm[pbase + p]
            perm[pbase + p] = perm[pbase + q]
            perm[pbase + q] = tmp
            cur += delta
            stats[ST_ACCEPTED] += 1
            if cur > best + 1e-12 * abs(best):
                best = cur
                for t in range(perm.shape[0]):
                    best_perm[t] = perm[t]
                stats[ST_IMPROVED] += 1
        temp *= alpha
    values[0] = cur
    values[1] = best
    return temp

"""Connectivity of the line graph: which lines reach a driven end."""

import numpy as np
from numba import njit

from .config import JIT


@njit(**JIT)
def reachable_lines(g, anchored_wl, anchored_bl):
    """Breadth-first search over lines joined by conducting devices.

    Word line ``i`` and bit line ``j`` are joined when ``g[i, j] > 0``; a
    line is a source when one of its ends is driven. Wires never break a
    line, so line-level reachability is node-level reachability. O(M N).

    Returns
    -------
    reached_wl : uint8 (M,), reached_bl : uint8 (N,)
    """
    M, N = g.shape
    reached_wl = anchored_wl.copy()
    reached_bl = anchored_bl.copy()
    # queue entries: line index, >= M means bit line (index - M)
    queue = np.empty(M + N, dtype=np.int64)
    head = 0
    tail = 0
    for i in range(M):
        if reached_wl[i]:
            queue[tail] = i
            tail += 1
    for j in range(N):
        if reached_bl[j]:
            queue[tail] = M + j
            tail += 1
    while head < tail:
        line = queue[head]
        head += 1
        if line < M:
            for j in range(N):
                if not reached_bl[j] and g[line, j] > 0.0:
                    reached_bl[j] = 1
                    queue[tail] = M + j
                    tail += 1
        else:
            j = line - M
            for i in range(M):
                if not reached_wl[i] and g[i, j] > 0.0:
                    reached_wl[i] = 1
                    queue[tail] = i
                    tail += 1
    return reached_wl, reached_bl

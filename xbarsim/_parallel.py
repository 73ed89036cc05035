"""Run a compiled kernel over the chunks of a range in parallel threads.

The MVM kernel (`kernels.mvm.mvm_range`) is a
serial loop over ``[lo, hi)`` that releases the GIL (``nogil``), and
`parallel_range` runs chunks of the range on several threads. Numba's
``prange`` would do the same from inside the kernel, but it compiles a
parallel region of its own around each loop, whose body here is the whole
MVM with its circuit solver: a first ``transfer`` + ``mvm`` with no Numba
cache compiled in 27.0 and 28.7 s against 35.7 and 37.1 s with the three
``prange`` loops of the kernel before (one VM, interleaved), and ran at the
same speed after (1000 paper-network MVMs of 200 inputs: 1.13-1.19 s
against 1.14-1.17 s).

The programming kernel keeps its ``prange`` (`kernels.programming.program_arrays`):
run the same way, it compiled about 13 s faster but ran 7-9 % slower, because
Numba compiles a ``prange`` region with its array arguments marked as not
aliasing each other (``flags.noalias``), which a plain kernel cannot ask for,
and LLVM makes faster code of the write-verify loop with that.

Every transfer (and every input of an MVM) draws its randomness from its own
stream and writes only its own outputs, so the result depends neither on the
thread count nor on the chunks.
"""

import contextlib
import threading

import numba


def capped_threads(n):
    """``n`` threads as Numba can run them: at least 1, at most its pool."""
    return max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))


@contextlib.contextmanager
def numba_threads(n):
    """Numba's thread count of the calling thread capped at ``n``
    (`capped_threads`) inside the block, restored after; ``None`` leaves it
    as it is."""
    if not n:
        yield
        return
    old = numba.get_num_threads()
    numba.set_num_threads(capped_threads(n))
    try:
        yield
    finally:
        numba.set_num_threads(old)


def parallel_range(run, n, threads=None):
    """Call ``run(lo, hi)`` over chunks covering ``[0, n)``, on ``threads``
    threads (default: Numba's thread count of the calling thread, as
    ``numba.set_num_threads`` sets it), the calling thread one of them.

    Chunks are handed out in order as threads come free (about four per
    thread), so transfers that take longer (many pulses) do not leave the
    other threads idle. The first exception stops the handing out and is
    raised once every thread has finished its chunk (a Ctrl-C while the
    calling thread waits for the others is raised at once; they stop after
    their chunk).
    """
    if n <= 0:
        return
    T = numba.get_num_threads() if threads is None else int(threads)
    T = max(1, min(T, n))
    if T == 1:
        run(0, n)
        return
    size = max(1, -(-n // (4 * T)))
    starts = iter(range(0, n, size))
    lock = threading.Lock()
    errors = []

    def worker():
        while True:
            with lock:
                lo = None if errors else next(starts, None)
            if lo is None:
                return
            try:
                run(lo, min(n, lo + size))
            except BaseException as exc:  # KeyboardInterrupt in the calling thread too
                with lock:
                    errors.append(exc)
                return

    helpers = [threading.Thread(target=worker, name="xbarsim-kernel", daemon=True) for _ in range(T - 1)]
    for t in helpers:
        t.start()
    try:
        worker()
        for t in helpers:
            t.join()
    except BaseException as exc:  # Ctrl-C during a join: hand out no more chunks
        with lock:
            errors.append(exc)
        raise
    if errors:
        raise errors[0]

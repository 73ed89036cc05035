"""An in-process Dask cluster on loopback for tests, closed as xbarsim
closes its own (`xbarsim._dask.close_cluster`: workers drained first)."""

import contextlib

import pytest


@contextlib.contextmanager
def loopback_cluster(n_workers=1, **kwargs):
    """A `distributed.LocalCluster` of `n_workers` threads-in-process workers
    (one thread each) on 127.0.0.1 over TCP, its dashboard on a free port.

    processes=False keeps tests fast; protocol="tcp" because the in-process
    transport takes no host, and only loopback is used. Closed with
    `close_cluster`: closed at once, the scheduler's worker-status stream
    could be caught in a 5 ms wait as the loop closed, and the interpreter
    printed "Future exception was never retrieved ... TimeoutError" after
    pytest's summary (once in about ten CI runs)."""
    distributed = pytest.importorskip("distributed")
    from xbarsim._dask import close_cluster

    options = dict(n_workers=n_workers, threads_per_worker=1, processes=False, protocol="tcp",
                   host="127.0.0.1", dashboard_address=":0")
    options.update(kwargs)
    cluster = distributed.LocalCluster(**options)
    try:
        yield cluster
    finally:
        close_cluster(cluster)

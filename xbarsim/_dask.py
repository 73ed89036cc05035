"""Connecting to a running Dask scheduler (`xbarsim.transfer_many`'s
``scheduler=``, ``xbarsim scale --scheduler``): bounded in time whatever
answers at the address, and only to a scheduler that has a worker."""

from __future__ import annotations

import logging
import os
import sys
import threading

from .exceptions import ParameterError

SCHEDULER_TIMEOUT_S = 10.0
"""Seconds allowed for connecting to the scheduler and completing Dask's
handshake, all together."""

WORKER_WAIT_S = 30.0
"""Seconds to wait for a first worker when the scheduler has none."""

PROBE_AFTER_S = 1.0
"""Seconds a scheduler connection may take before `connect_scheduler` asks
whether anything listens at the address at all (`_refused`)."""

WORKER_GONE_S = 30.0
"""Seconds a running sweep's cluster may be without any worker before
`WorkerWatch` says so."""


def no_worker_message(who, pending, client):
    """`WorkerWatch`'s line: ``who`` (the command), the ``pending`` work
    (e.g. "chunks") and the scheduler's address, where a worker can join
    (a cluster the run started itself listens on loopback)."""
    address = getattr(getattr(client, "scheduler", None), "address", None)
    if not (isinstance(address, str) and address.startswith(("tcp://", "tls://"))):
        address = "ADDRESS"  # an in-process cluster's inproc:// cannot be joined from outside
    return (f"{who}: the cluster has had no worker for {WORKER_GONE_S:g} s; the pending {pending} wait for one "
            f"(start one with `dask worker {address}`, or scale the cluster up; Ctrl-C stops)")


def paused_worker_message(who, pending):
    """`WorkerWatch`'s line when the cluster's workers are all paused."""
    return (f"{who}: every worker of the cluster has been paused for memory for {WORKER_GONE_S:g} s (Dask pauses "
            "a worker whose memory passes distributed.worker.memory.pause, 80 % of its limit by default, and "
            f"gives it no task until it falls back); the pending {pending} wait for one (give the workers more "
            "memory, or restart them: client.restart(); Ctrl-C stops)")


class WorkerWatch:
    """While a run's tasks are pending on ``client``: one line (``message``)
    on stderr once its cluster has had no running worker for ``after``
    seconds (all of them gone mid-run, or none yet), again after a worker
    has come and gone; ``paused`` instead where the workers are there but
    Dask has paused them all for memory (a worker that idles above its
    pause threshold takes no task: a run on a cluster of such workers waited
    without a word; found by review). The run goes on waiting: an adaptive
    or batch-queued cluster may bring workers back after minutes, a paused
    one may resume, and Ctrl-C stops. A run whose workers all left waited
    without a word.

    A daemon thread asks the scheduler for its workers every ``poll``
    seconds; it stops at the end of the with-block, or when the client can
    no longer answer (the run reports that itself)."""

    def __init__(self, client, message, paused=None, after=None, poll=1.0, said=False):
        self.client = client
        self.message = message
        self.paused = message if paused is None else paused
        self.after = float(WORKER_GONE_S if after is None else after)
        self.poll = float(poll)
        self.said = bool(said)  # the caller already said the cluster has none: silent until one comes and goes
        self._stop = threading.Event()
        self._thread = None

    @classmethod
    def of_run(cls, client, who, pending, said=False):
        """The watch of a run of ``who`` whose ``pending`` tasks wait on
        ``client``, with its no-worker and paused-worker lines."""
        return cls(client, no_worker_message(who, pending, client), paused_worker_message(who, pending), said=said)

    def __enter__(self):
        self._thread = threading.Thread(target=self._watch, name="xbarsim-dask-watch", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        # a generator holding the with-block may be finalized on this very
        # thread (by the cycle collector): it cannot join itself
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        return False

    def _watch(self):
        import time

        since, said = None, self.said
        while not self._stop.wait(self.poll):
            try:
                status = [str(w.get("status", "running")) for w in
                          self.client.scheduler_info().get("workers", {}).values()]
            except Exception:  # noqa: BLE001 - a closed client: the run reports it
                return
            if "running" in status:
                since, said = None, False
                continue
            since = time.monotonic() if since is None else since
            if not said and time.monotonic() - since >= self.after and not self._stop.is_set():
                print(self.paused if "paused" in status else self.message, file=sys.stderr, flush=True)
                said = True


def one_line(text):
    """`text` with its runs of whitespace (newlines too) as single spaces."""
    return " ".join(str(text).split())


def transport_problem(scheme):
    """Why Dask's ``scheme://`` transport cannot be used in this
    installation (one line), or None when it can: its comm backend must be
    known and build a connector. ``ucx://`` stays registered after
    distributed dropped UCX-Py, and its connector cannot be built; a Client
    of such an address failed with a bare TypeError."""
    from distributed.comm.registry import get_backend

    try:
        get_backend(scheme).get_connector()
    except Exception as exc:  # noqa: BLE001 - whatever the backend raises is the reason
        reason = one_line(f"{type(exc).__name__}: {exc}")
        return reason if len(reason) <= 200 else reason[:197] + "..."
    return None


def _closing_client_class():
    """`distributed.Client` that closes itself when it fails to start.

    Dask closes a Client whose connection fails with OSError; any other
    error (a transport whose connector fails) left it half started, and its
    ``__del__`` at exit then waited 20 s and printed a TimeoutError
    traceback."""
    from distributed import Client

    class ClosingClient(Client):
        def start(self, **kwargs):
            try:
                return super().start(**kwargs)
            except BaseException:
                try:
                    self.close(timeout=self._timeout)
                except BaseException:  # noqa: BLE001 - the start's error is the one to report
                    pass
                raise

    return ClosingClient


def normalized_address(address):
    """A scheduler address as Dask takes it: surrounding white space dropped
    and the scheme in lower case (``' tcp://...'`` and ``'TCP://...'`` were
    refused as transports "that cannot be used in this installation").
    Anything but a string is returned as it is."""
    if not isinstance(address, str):
        return address
    address = address.strip()
    if "://" in address:
        scheme, rest = address.split("://", 1)
        address = f"{scheme.lower()}://{rest}"
    return address


ADDRESS_HINT = "give the address `dask scheduler` prints, tcp://HOST:PORT (e.g. tcp://127.0.0.1:8786)"
"""How to give a scheduler's address (messages)."""


def check_scheduler_address(address, name):
    """Refuse a scheduler `address` (normalized: `normalized_address`) that is
    not ``[SCHEME://]HOST:PORT`` of a transport usable here, before
    connecting; `name` says how the user gave it (``"--scheduler"``,
    ``"scheduler ="``). distributed raises a bare ValueError on these, and
    `transfer_many` waited its connect timeout for port 99999.
    """
    from distributed.comm import parse_address, parse_host_port
    from distributed.comm.registry import backends

    # inproc: inside one process only; ucx: registered, not usable without
    # UCX-Py (`transport_problem`)
    schemes = [b for b in backends if b != "inproc" and transport_problem(b) is None]
    try:
        scheme, location = parse_address(address)
        host, port = parse_host_port(location)
    except (ValueError, TypeError):
        raise ParameterError(f"{name} {address!r} is not an address; {ADDRESS_HINT}.") from None
    if scheme in backends and scheme not in schemes and scheme != "inproc":
        raise ParameterError(f"{name} {address!r}: Dask's {scheme}:// transport cannot be used in this "
                             f"installation ({transport_problem(scheme)}); {ADDRESS_HINT}.")
    if scheme not in schemes:
        raise ParameterError(f"{name} {address!r}: unknown scheme {scheme + '://'!r} (Dask speaks "
                             f"{', '.join(s + '://' for s in schemes)}); {ADDRESS_HINT}.")
    if not host or not 1 <= port <= 65535:
        raise ParameterError(f"{name} {address!r} needs a host and a port in 1..65535; {ADDRESS_HINT}.")


def client_problem(client):
    """Why a user's `distributed.Client` cannot run xbarsim's blocking
    calls (a sentence), or None: closed (distributed's raw ClosedClientError
    at the first submit), or asynchronous (its calls return coroutines: an
    AttributeError on a coroutine, or cancels never awaited).
    """
    if client.status in ("closing", "closed"):
        return f"it is {client.status}; pass an open one"
    if getattr(client, "asynchronous", False):
        return ("it is asynchronous (asynchronous=True), and xbarsim waits on its results; pass a "
                "synchronous one, distributed.Client(address)")
    return None


def scheduler_lost(exc, client):
    """Whether `exc`, raised by a future of `client`, says the scheduler (not
    a worker, not the task) is gone: distributed cancels every pending
    future with reason "scheduler-connection-lost", and the client leaves
    "running"."""
    return getattr(exc, "reason", None) == "scheduler-connection-lost" or client.status != "running"


def _refused(address):
    """The `ConnectionRefusedError` of a plain TCP connect to a ``tcp://``
    (or schemeless) `address`, or None: for anything else (it connects, the
    connect times out, the host is unknown or the scheme another) the
    Client's own attempt reports. A connect that succeeds is closed at
    once, which a scheduler logs as a connection closed before its
    handshake: hence asked only of a connection already slow."""
    import socket

    try:
        from distributed.comm.addressing import parse_address, parse_host_port

        scheme, location = parse_address(address)
        if scheme != "tcp":
            return None
        host, port = parse_host_port(location)
        socket.create_connection((host, port), timeout=PROBE_AFTER_S).close()
    except ConnectionRefusedError as exc:
        return exc
    except Exception:  # noqa: BLE001 - not a refusal: the Client's attempt says what it is
        return None
    return None


def connect_scheduler(address, who, timeout=None, worker_wait=None):
    """A `distributed.Client` of the scheduler at `address` that has at least
    one worker; `ParameterError` saying what to check otherwise. `who`
    prefixes the one line printed while it waits for a worker; `timeout`
    and `worker_wait` default to `SCHEDULER_TIMEOUT_S` and `WORKER_WAIT_S`.

    ``Client(address, timeout=...)`` bounds the TCP connect only: a peer that
    accepts the connection but does not answer Dask's handshake (another
    service, a port that never replies) would hang it forever. So the Client
    is made in a daemon thread and given `timeout` seconds in all; an
    attempt still hanging then is abandoned (it cannot keep the process
    alive, and closes its Client should it ever finish). An address that is
    not one, or whose transport cannot be used here, is refused before
    connecting (`check_scheduler_address`), and a Client that fails to start
    is closed. A connection still pending after `PROBE_AFTER_S` is checked
    for a refusal (nothing listens on that port): the Client retries a
    refused connect until `timeout`, and a mistyped port took the whole 10 s
    to be reported (found by review).
    """
    address = normalized_address(address)
    check_scheduler_address(address, "cannot connect to")  # its callers' check, made up front, is this one
    Client = _closing_client_class()
    timeout = float(SCHEDULER_TIMEOUT_S if timeout is None else timeout)
    worker_wait = float(WORKER_WAIT_S if worker_wait is None else worker_wait)
    lock = threading.Lock()
    box = {}

    def attempt():
        try:
            client = Client(address, timeout=timeout, set_as_default=False)
        except BaseException as exc:  # reported by the caller
            box["error"] = exc
            return
        with lock:
            abandoned = box.setdefault("client", client) is not client
        if abandoned:
            client.close()

    thread = threading.Thread(target=attempt, name="xbarsim-dask-connect", daemon=True)
    thread.start()
    try:
        thread.join(min(PROBE_AFTER_S, timeout))
        refused = _refused(address) if thread.is_alive() else None
        if refused is not None:
            reason = one_line(f"{type(refused).__name__}: {refused}")
            raise ParameterError(
                f"cannot reach the Dask scheduler at {address!r} ({reason}: nothing listens on that port). "
                "Check that `dask scheduler` runs there and that host and port are right.")
        thread.join(timeout * 1.2 + 0.5)  # Client's own connect timeout reports first
    except BaseException:
        # Ctrl-C during the join, or the refusal above: a Client connected
        # after it stayed open for the life of the process; one already made
        # is closed
        with lock:
            made = box.setdefault("client", None)  # from now on, a late Client closes itself
        if made is not None:
            made.close()
        raise
    with lock:
        client = box.setdefault("client", None)  # from now on, a late Client closes itself
    if client is None:
        exc = box.get("error")
        if exc is None:
            raise ParameterError(
                f"no answer from {address!r} within {timeout:g} s: something accepts connections there "
                "but does not complete Dask's handshake. Check that it is the scheduler's address as "
                "`dask scheduler` prints it (port 8786 by default, not the dashboard's 8787).")
        if not isinstance(exc, Exception):
            raise exc  # KeyboardInterrupt, SystemExit
        reason = one_line(f"{type(exc).__name__}: {exc}")
        reason = reason if len(reason) <= 200 else reason[:197] + "..."
        if isinstance(exc, (OSError, TimeoutError)):
            raise ParameterError(
                f"cannot reach the Dask scheduler at {address!r} ({reason}). Check that `dask scheduler` "
                "runs there and that host and port are right.") from None
        raise ParameterError(
            f"{address!r} did not answer as a Dask scheduler ({reason}). Check that it is the scheduler's "
            "address as `dask scheduler` prints it, not another service's.") from None
    try:
        if not client.scheduler_info().get("workers"):
            print(f"{who}: the scheduler at {address} has no worker yet; waiting up to "
                  f"{worker_wait:g} s for one", file=sys.stderr)
            client.wait_for_workers(1, timeout=worker_wait)
    except BaseException as exc:
        client.close()
        if isinstance(exc, TimeoutError):
            raise ParameterError(
                f"the Dask scheduler at {address!r} has no workers (waited {worker_wait:g} s); start one "
                f"with `dask worker {address}`, then rerun.") from None
        if isinstance(exc, OSError):
            raise ParameterError(f"lost the connection to the Dask scheduler at {address!r} "
                                 f"({one_line(exc)}); check that it is still running.") from None
        raise
    return client


def close_client(client, quiet=False):
    """Close `client`; `quiet`: with distributed's log silenced meanwhile (a
    client whose scheduler is gone logs the traceback of its cancelled
    reconnect attempt as it closes, about 35 lines before the one-line
    error)."""
    import logging

    # distributed's own configuration gives some of its loggers a level of
    # their own (distributed.client: warning), which the parent's does not
    # override: each is raised, and given back
    names = ["distributed"] + [name for name in list(logging.root.manager.loggerDict)
                               if name.startswith("distributed.")]
    levels = {name: logging.getLogger(name).level for name in names} if quiet else {}
    for name in levels:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        client.close()
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def close_cluster(cluster, client=None, drain_s=5.0):
    """Close `client` (when given), then the `distributed.LocalCluster`
    `cluster`, once its workers have left (up to `drain_s` seconds) and the
    scheduler has sent their departure.

    The scheduler tells each subscriber (a cluster is one) that a worker
    left through a stream that batches for 5 ms. Closed at once, the
    cluster's event loop could close in those 5 ms; when the stream's timer
    then fired in the loop's last step, its result was never collected,
    and the interpreter printed "Future exception was never retrieved ...
    TimeoutError: Timeout" at exit (in one CI log of about ten; a review's
    loop of quick closes left the stream in that wait 17 times in 20, and
    none in 20 with the workers drained first). Best effort: the cluster is
    closed whatever the drain does; one already closed is not drained (its
    last worker could stay listed, and the drain waited out `drain_s`)."""
    import time

    try:
        if client is not None:
            client.close()
        if getattr(cluster.status, "name", "") in ("closing", "closed", "failed"):
            return
        cluster.scale(0)
        end = time.monotonic() + drain_s
        while cluster.scheduler_info.get("workers") and time.monotonic() < end:
            time.sleep(0.01)
        time.sleep(0.05)  # several of the stream's 5 ms batches
    except Exception:  # noqa: BLE001 - closing below is what matters
        pass
    finally:
        cluster.close()


def usable_cores():
    """The cores this process may run on (its affinity mask)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def start_local_cluster(n_workers):
    """A `distributed.LocalCluster` of `n_workers` single-threaded worker
    processes on loopback, its dashboard on a free port (``None`` still took
    8787, and warned when that was in use), the workers' logs silenced.

    The worker processes never see SIGINT: a terminal's Ctrl-C reaches the
    whole process group, and each worker printed its own KeyboardInterrupt
    traceback under the caller's one line (73 lines for two workers).
    The caller gets the interrupt and closes the cluster.

    So while the workers start, this thread blocks SIGINT: Dask's event-loop
    thread, started meanwhile, inherits the block, and so do the threads it
    starts the worker processes from, and the processes (a signal mask
    survives exec; multiprocessing starts its resource tracker the same
    way). That tracker is started first, here: starting it from the event
    loop unblocked SIGINT in that thread again. A Ctrl-C in that second or
    two is not lost: held pending in this thread, or noted by a handler when
    another thread (OpenBLAS's) takes it, it is raised as KeyboardInterrupt
    once the cluster is up, and the cluster closed. (This process used to
    ignore SIGINT meanwhile, for the workers to inherit "ignored": such a
    Ctrl-C was dropped, and the sweep ran to its end and exited 0.
    A handler alone would not do: a process that runs a new
    program, as the workers are started, inherits "ignored" or a block, but
    not a handler.) Signals can be set from the main thread only; elsewhere
    the workers start as they are. Without signal masks or sigtimedwait
    (Windows, macOS) SIGINT is ignored meanwhile, as before.

    A cluster that fails to start is closed here and taken off
    distributed's exit hook, which would close it again at exit and print an
    AssertionError traceback."""
    import multiprocessing
    import signal

    from distributed import LocalCluster
    from distributed.deploy.spec import SpecCluster

    if getattr(multiprocessing.current_process(), "_inheriting", False):
        # a worker process importing a script that starts workers at import:
        # out quietly, and the caller's process says why (below)
        raise SystemExit(1)
    # such a script's failure is told in one message, not in the workers'
    # and distributed's ~250 lines of tracebacks
    script = _unguarded_main()
    quiet = [logging.getLogger(name) for name in ("distributed", "asyncio")] if script else []
    levels = [log.level for log in quiet]
    for log in quiet:
        log.setLevel(logging.CRITICAL)
    before = set(SpecCluster._instances)
    main = threading.current_thread() is threading.main_thread()
    hold = main and hasattr(signal, "pthread_sigmask") and hasattr(signal, "sigtimedwait")
    noted = []
    if hold:
        from multiprocessing import resource_tracker

        resource_tracker.ensure_running()
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        handler = signal.signal(signal.SIGINT, lambda *_: noted.append(True))
    elif main:  # no signal masks or sigtimedwait (Windows, macOS): ignored meanwhile, for the workers to inherit
        handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        try:
            # silence_logs: the workers' own logs. Closing the cluster under a
            # running task made each worker print its lost heartbeat with a
            # traceback; a worker that dies still reaches the caller, as
            # KilledWorker / CommClosedError on its task.
            cluster = LocalCluster(n_workers=int(n_workers), threads_per_worker=1, processes=True,
                                   host="127.0.0.1", dashboard_address=":0", silence_logs=logging.CRITICAL)
        finally:
            # taken here if pending, raised below. Not sigpending() then
            # sigwait(): a thread that does not block SIGINT can take it in
            # between, and sigwait() then waited forever (a CI run hung)
            if hold and signal.sigtimedwait({signal.SIGINT}, 0) is not None:
                noted.append(True)
            if main:
                signal.signal(signal.SIGINT, handler)
            if hold:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        if noted:
            raise KeyboardInterrupt
        for log, level in zip(quiet, levels):
            log.setLevel(level)
        return cluster
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            # the half-started nannies and their event-loop tasks report
            # their own failure to start, at exit too: expected after Ctrl-C,
            # so not shown (any other failure keeps its logs)
            for name in ("distributed", "asyncio"):
                logging.getLogger(name).setLevel(logging.CRITICAL)
        for cluster in set(SpecCluster._instances) - before:
            try:
                cluster.close(timeout=5)
            except BaseException:  # noqa: BLE001 - half built: what is left goes with the process
                pass
            cluster.shutdown_on_close = False
        if script is not None and not isinstance(exc, KeyboardInterrupt):
            for log, level in zip(quiet, levels):
                log.setLevel(level)
            # ~290 lines of the workers' tracebacks ending "Nanny failed to
            # start", multiprocessing's own hint buried in them
            raise ParameterError(
                f"the Dask worker processes could not start: each imports {script} again, which starts "
                "workers again at import. Put the script's work under `if __name__ == \"__main__\":` "
                "(multiprocessing's rule for scripts that start processes).") from None
        raise


def _unguarded_main():
    """The main script's path where it starts work at import, with no
    ``if __name__ == "__main__":`` in it (a worker process started by
    ``spawn`` or ``forkserver`` imports it again), else None."""
    import re

    import dask

    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if dask.config.get("distributed.worker.multiprocessing-method", "spawn") == "fork" or (
            spec is not None and (spec.name == "__main__" or spec.name.endswith(".__main__"))):
        return None  # not imported again: forked workers, or a package's __main__ (`python -m xbarsim`)
    path = getattr(main, "__file__", None)
    if not isinstance(path, str) or not path.endswith(".py"):
        return None
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            source = fh.read()
    except OSError:
        return None
    return None if re.search(r"""__name__\s*==\s*['"]__main__['"]""", source) else path

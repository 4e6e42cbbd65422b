"""Writing a store's batches on a background thread, so casting, compressing and
writing one batch overlaps the model's next forward.

A :class:`StoreWriter` opened with ``background=True`` (what ``capture(store=path)``
does) validates each map when it is handed over and gives the whole batch to a
:class:`BatchPipeline` at ``commit()``; one worker thread then writes its segments and
commits it exactly as the synchronous path does (journal line last, after every shard
is written and, when durable, synced). The codecs release the GIL (blosc, the torch
cast, file writes), so the forward keeps running meanwhile.

Bounded memory: at most ``depth`` batches (default one) are handed over and not yet
committed; ``commit()`` of the next batch waits until there is room. With the batch the
forward is filling, at most two batches of maps are held at once.

Failures: the first exception of the worker is kept, later batches are dropped unwritten
(nothing of them reaches the journal), and the error is raised on the caller's thread at
the next ``write``/``commit``/``wait`` or at close, as the same exception object the
synchronous path raises: never lost, never a half-written batch shown as complete.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

Job = Callable[[], None]


class BatchPipeline:
    """One worker thread that runs batch jobs in order, at most ``depth`` queued or
    running at a time.

    Example:
        >>> pipe = BatchPipeline()
        >>> pipe.submit(lambda: write_batch(0))   # returns at once (room for one)
        >>> pipe.submit(lambda: write_batch(1))   # waits until batch 0 is written
        >>> pipe.wait()                           # all done; raises a worker failure
        >>> pipe.stop()
    """

    def __init__(self, depth: int = 1, name: str = "attnscope-store") -> None:
        self.depth, self.name = depth, name
        self._jobs: deque[Job] = deque()
        self._busy = 0  # jobs submitted and not finished (queued or running)
        self._cond = threading.Condition()
        self._failure: BaseException | None = None
        self._cancel = False
        self._thread: threading.Thread | None = None

    def submit(self, job: Job) -> None:
        """Queue ``job``; waits while ``depth`` jobs are unfinished. Raises (and clears)
        a failure of an earlier job instead of queueing behind it."""
        with self._cond:
            self._raise_failure()
            while self._busy >= self.depth:
                self._cond.wait()
            self._raise_failure()
            self._jobs.append(job)
            self._busy += 1
            if self._thread is None:  # started on first use: a writer that writes
                self._cancel = False  # nothing never starts a thread
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def wait(self) -> None:
        """Block until every submitted job has finished; raise (and clear) the first
        failure among them."""
        with self._cond:
            while self._busy:
                self._cond.wait()
            self._raise_failure()

    def check(self) -> None:
        """Raise (and clear) a failure of a finished job, without waiting."""
        with self._cond:
            self._raise_failure()

    def stop(self, cancel: bool = False) -> BaseException | None:
        """Finish (or, with ``cancel``, drop the queued jobs and finish the running one)
        and end the thread; returns a failure not raised yet instead of raising it, for
        callers already handling another exception."""
        with self._cond:
            if cancel:
                self._busy -= len(self._jobs)
                self._jobs.clear()
            thread, self._thread = self._thread, None
            if thread is not None:
                self._cancel = True  # the thread ends once its queue is empty
                self._cond.notify_all()
        if thread is not None:
            thread.join()
        with self._cond:
            failure, self._failure = self._failure, None
        return failure

    @property
    def pending(self) -> int:
        """Jobs submitted and not finished yet."""
        return self._busy

    def _raise_failure(self) -> None:
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._cancel:
                    self._cond.wait()
                if not self._jobs:
                    return
                job = self._jobs.popleft()
            try:
                job()
            except BaseException as err:  # noqa: BLE001  (raised on the caller's thread)
                with self._cond:
                    if self._failure is None:
                        self._failure = err
                    self._busy -= len(self._jobs)  # later batches are never written
                    self._jobs.clear()
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()

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

import os
import threading
from collections import deque
from collections.abc import Callable

import torch

from attnscope.maps import AttentionMap
from attnscope.store import forms

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
        self._pid = os.getpid()

    def submit(self, job: Job) -> None:
        """Queue ``job``; waits while ``depth`` jobs are unfinished. Raises (and clears)
        a failure of an earlier job instead of queueing behind it."""
        if self._pid != os.getpid():  # a forked child: its parent's worker is not here
            self.__init__(self.depth, self.name)  # type: ignore[misc]
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


class BackgroundWrites:
    """The background half of :class:`attnscope.store.writer.StoreWriter` (a mixin):
    maps are checked when handed over and kept until ``commit()`` gives the batch to a
    :class:`BatchPipeline`, whose worker writes and commits it with the writer's own
    synchronous methods (``_write_one``, ``_commit_now``, ``_drop``)."""

    form: str
    expected: int | None

    def _init_background(self, background: bool) -> None:
        self._pipe = BatchPipeline() if background else None
        self._batch: list[tuple[str, AttentionMap, torch.Tensor, forms.SegmentForm]] = []
        self._waited = False  # the first background batch is waited for (disk estimate)

    def wait(self) -> None:
        """Block until every batch handed to ``commit()`` is committed; raise the failure
        of one that could not be (background mode; a no-op otherwise)."""
        if self._pipe is not None:
            self._pipe.wait()

    def _hand(self, name: str, m: AttentionMap, w: torch.Tensor) -> None:
        """Check one map now (its form); write it now or keep it for the worker."""
        form = forms.choose(m, w, self.form)
        if self._pipe is None:
            self._write_one(name, m, w, form)  # type: ignore[attr-defined]
            return
        self._pipe.check()  # a failure of an earlier batch surfaces at the next one
        self._batch.append((name, m, w, form))

    def _hand_batch(self) -> bool:
        """Background mode: give the batch to the worker (waiting while another is in
        flight; the first one is waited for when a disk estimate is due). False in
        synchronous mode, where the caller commits at once."""
        if self._pipe is None:
            return False
        items, self._batch = self._batch, []
        if not items:
            self._pipe.check()
            return True
        self._pipe.submit(lambda: self._write_batch(items))
        if self.expected and not self._waited:
            self._waited = True
            self._pipe.wait()
        return True

    def _write_batch(self, items: list[tuple]) -> None:
        """The worker's job: write one batch's segments, then commit it."""
        try:
            for name, m, w, form in items:
                self._write_one(name, m, w, form)  # type: ignore[attr-defined]
        except BaseException:
            self._drop()  # type: ignore[attr-defined]
            raise
        self._commit_now()  # type: ignore[attr-defined]

    def _stop(self, cancel: bool) -> BaseException | None:
        """End the worker (finishing what it holds unless ``cancel``); its failure."""
        self._batch = []
        return None if self._pipe is None else self._pipe.stop(cancel=cancel)

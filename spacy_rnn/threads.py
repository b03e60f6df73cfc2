"""spacy-rnn's thread policy, by measurement (project/scripts/bench_speed.py,
docs/performance.md). Standard library and torch only: the plain-torch
modules of `spacy_rnn.nn` use it too.

A recurrent step is a few small matrix products, too small to split well:
with two or more intra-op threads every step ends in an OpenMP barrier that
spin-waits, and when another process holds a core each step waits for a time
slice (training ran up to 10x slower). So spacy-rnn's modules compute on one
intra-op thread, forward and backward (`module_threads`); where the caller
lets torch use two or more threads, the two directions of a bidirectional
layer run at once, the backward one on a second thread (`on_second_thread`),
one long task per thread, which never spin-waits either: on a busy machine
the two tasks only share the cores that are free. The caller's own thread
count is restored after each call.

nlp.pipe(n_process=N) forks workers: each computes on one torch thread, and
has no copy of the parent's second thread.
"""
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional

import torch

MODULE_THREADS = 1  # intra-op torch threads of spacy-rnn's modules

_concurrent = threading.local()  # .allowed: whether this thread's bidirectional layers run both directions at once
_second_thread: Optional[ThreadPoolExecutor] = None


def _after_fork_in_child() -> None:
    """One torch thread in a forked worker, because more is not possible: a
    forked child cannot use the parent's GNU OpenMP pool, and with two threads
    it hangs (torch 2.13, measured). One thread per worker is also what N
    workers on N cores want; the speed-up comes from N. The parent's second
    thread is not copied into the child: it starts its own when needed."""
    global _second_thread
    torch.set_num_threads(1)
    _second_thread = None


os.register_at_fork(after_in_child=_after_fork_in_child)


@contextmanager
def torch_threads(n_threads: int) -> Iterator[None]:
    """Run torch on n_threads intra-op threads inside the block, and give the
    caller back its own thread count afterwards."""
    before = torch.get_num_threads()
    if before == n_threads:
        yield
        return
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def module_threads() -> Iterator[None]:
    """The thread policy for spacy-rnn's torch modules (see above)."""
    with concurrent_directions(torch.get_num_threads() > MODULE_THREADS), torch_threads(MODULE_THREADS):
        yield


@contextmanager
def concurrent_directions(allowed: bool) -> Iterator[None]:
    """Inside the block, bidirectional layers on the CPU run their two
    directions at once when `allowed` (this thread only)."""
    before = directions_run_concurrently()
    _concurrent.allowed = allowed
    try:
        yield
    finally:
        _concurrent.allowed = before


def directions_run_concurrently() -> bool:
    """Whether `concurrent_directions` allows it on this thread (off by default)."""
    return getattr(_concurrent, "allowed", False)


def on_second_thread(task: Callable[[], Any]) -> Future:
    """Start task on the second thread, on one intra-op torch thread, with the
    caller's grad mode (grad mode is per thread)."""
    global _second_thread
    if _second_thread is None:
        _second_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spacy-rnn-direction")
    grad_enabled = torch.is_grad_enabled()

    def run():
        torch.set_num_threads(1)
        with torch.set_grad_enabled(grad_enabled):
            return task()

    return _second_thread.submit(run)

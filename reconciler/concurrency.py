"""One function over many items on a pool of threads: a list in the items' order, or a crawl
over the items each visit leads to.

On an error or Ctrl-C the caller gets it at once: threads still waiting on the network are not
waited for (their requests end on their own timeouts, or with the process).
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def map_concurrently(function: Callable[[T], R], items: Iterable[T], workers: int) -> list[R]:
    """`[function(item) for item in items]`, at most `workers` at a time; the first error
    (in the items' order) is raised."""
    todo = list(items)
    if not todo:
        return []
    pool = ThreadPoolExecutor(max_workers=min(workers, len(todo)))
    try:
        return list(pool.map(function, todo))
    finally:
        # Done: every future has finished. Failed or interrupted: none is waited for.
        pool.shutdown(wait=False, cancel_futures=True)


def crawl(
    seeds: Iterable[T],
    visit: Callable[[T], tuple[R, Iterable[T]]],
    workers: int,
    depth: int,
    known: Collection[T] = (),
    spare: int = 10**9,
) -> dict[T, R]:
    """`visit` each seed, then each item a visit names (`visit(item)` is its result and the
    items it leads to), up to `depth` levels and `spare` items beyond the seeds, each item
    once, at most `workers` at a time: an item's visit starts as soon as the one naming it is
    done, not with a level's last. Items in `known` are not visited; the first error is
    raised."""
    pool = ThreadPoolExecutor(max_workers=workers)
    seen = set(known)
    results: dict[T, R] = {}
    finished: queue.SimpleQueue[tuple[T, int, Future[tuple[R, Iterable[T]]]]] = queue.SimpleQueue()
    running = 0

    def start(items: Iterable[T], level: int) -> None:
        nonlocal running, spare
        for item in items:
            if item not in seen and level < depth and (level == 0 or spare > 0):
                spare -= level > 0
                seen.add(item)
                future = pool.submit(visit, item)
                running += 1
                # Told when done (a queue, not `wait` over every pending future per step).
                future.add_done_callback(_reporting(finished, item, level))

    try:
        start(seeds, 0)
        while running:
            item, level, done = finished.get()
            running -= 1
            results[item], leads = done.result()
            start(leads, level + 1)
        return results
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _reporting(
    finished: queue.SimpleQueue[tuple[T, int, Future[tuple[R, Iterable[T]]]]], item: T, level: int
) -> Callable[[Future[tuple[R, Iterable[T]]]], None]:
    """A done-callback putting the item's finished visit on the queue."""
    return lambda done: finished.put((item, level, done))

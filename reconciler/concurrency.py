"""One function over many items on a pool of threads, the results in the items' order.

On an error or Ctrl-C the caller gets it at once: threads still waiting on the network are not
waited for (their requests end on their own timeouts, or with the process).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
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

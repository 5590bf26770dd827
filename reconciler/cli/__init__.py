"""Command-line entry points: `mirror` and `mirror-manager`."""

import gc
import os
import sys

import typer

from reconciler.cli.manager import app as manager_app
from reconciler.cli.mirror import app as mirror_app

__all__ = ["manager_app", "manager_main", "mirror_app", "mirror_main"]


def mirror_main() -> None:
    """Entry point of `mirror` (and of `python -m reconciler`)."""
    _main(mirror_app, "mirror")


def manager_main() -> None:
    """Entry point of `mirror-manager`."""
    _main(manager_app, "mirror-manager")


def _main(app: typer.Typer, name: str) -> None:
    """Run a command; once it was interrupted (exit 130) and has cleaned up (lock released,
    what was left undone said), leave at once: threads still waiting on the network are
    abandoned rather than joined, which could take as long as their timeouts."""
    # A plan builds hundreds of thousands of small objects (files of pages, verdicts) and
    # frees them in bulk at exit; with the collector's default threshold (700 allocations)
    # its young-generation passes were a tenth of a real plan's CPU. Cycles are still found,
    # just less often.
    gc.set_threshold(50_000, 20, 100)
    try:
        app(prog_name=name)
    except SystemExit as exit:
        if exit.code == 130:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)
        raise

"""Command-line entry points: `mirror` and `mirror-manager`."""

from reconciler.cli.manager import app as manager_app
from reconciler.cli.mirror import app as mirror_app

__all__ = ["manager_app", "manager_main", "mirror_app", "mirror_main"]


def mirror_main() -> None:
    """Entry point of `mirror`."""
    mirror_app()


def manager_main() -> None:
    """Entry point of `mirror-manager`."""
    manager_app()

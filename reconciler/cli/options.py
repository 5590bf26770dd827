"""Options every command accepts after its name, and the one error boundary."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Annotated

import click
import typer

from reconciler import __version__, gitrepo, operations, wiring
from reconciler.cancel import Cancellation
from reconciler.desired import load_desired_state
from reconciler.errors import ReconcilerError, UserError
from reconciler.http import default_cache_dir
from reconciler.model import DesiredState, RegistryType
from reconciler.registry import Registry
from reconciler.upstream import UpstreamIndex
from reconciler.vulns import VulnerabilityService

# `-h` as well as `--help`, on every command (Click hands it down to subcommands).
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}


def _show_version(ctx: typer.Context, value: bool) -> None:
    if value:
        typer.echo(f"{ctx.info_name} {__version__}")
        raise typer.Exit()


VersionOption = Annotated[
    bool,
    typer.Option(
        "--version", callback=_show_version, is_eager=True, help="Show the version and exit."
    ),
]
DesiredStateOption = Annotated[
    Path, typer.Option("--desired-state", help="Directory with requirements.txt and config.yaml.")
]
RegistryOption = Annotated[
    RegistryType | None, typer.Option("--registry", help="Override registry.type from config.")
]
NowOption = Annotated[
    str | None,
    typer.Option("--now", help="Evaluate policy at this ISO-8601 instant (default: now)."),
]
DebugOption = Annotated[
    bool, typer.Option("--debug", help="Tracebacks and request logs (never a token).")
]


def runtime_of(ctx: typer.Context) -> wiring.Runtime:
    """The runtime a caller passed as the Click context's `obj` (a test), else the machine's."""
    return ctx.obj if isinstance(ctx.obj, wiring.Runtime) else wiring.Runtime()


@dataclass(frozen=True)
class Common:
    """The common options, resolved, and the parts built from them (through `wiring`)."""

    desired_state: Path
    registry: RegistryType | None
    now_text: str | None
    debug: bool
    runtime: wiring.Runtime

    def now(self) -> datetime:
        """`--now` as an aware UTC datetime (naive input is taken as UTC), else the clock's."""
        if self.now_text is None:
            return self.runtime.clock()
        try:
            moment = datetime.fromisoformat(self.now_text.replace("Z", "+00:00"))
        except ValueError:
            raise UserError(f"not an ISO-8601 instant: {self.now_text!r}", key="--now") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.astimezone(timezone.utc)

    def desired(self) -> DesiredState:
        """The validated desired state, with its git commit where it is in git; without a
        config.yaml, a warning says what that means."""
        desired = load_desired_state(self.desired_state)
        desired = replace(desired, commit=gitrepo.head_commit(self.desired_state))
        if not (self.desired_state / "config.yaml").is_file():
            config = desired.config
            typer.echo(
                f"warning: {self.desired_state / 'config.yaml'} not found: every policy default "
                f"applies, packages come from {config.upstream.index_url} and go to the "
                f"{config.registry.type.value} registry {config.registry.path!r}; "
                "`mirror init` writes a commented config.yaml",
                err=True,
            )
        return desired

    def history(self, allow_older: bool = False) -> operations.History:
        """The desired state's git history, for refusing an older state than last applied."""
        return operations.History(partial(gitrepo.is_ancestor, self.desired_state), allow_older)

    def make_registry(self, desired: DesiredState) -> Registry:
        """The registry the config (or `--registry`) names."""
        return wiring.make_registry(desired, self.registry, self.runtime)

    def make_upstream(self, desired: DesiredState) -> UpstreamIndex:
        """The upstream index, with the HTTP cache."""
        return wiring.make_upstream(desired, default_cache_dir(), self.runtime)

    def make_services(self, desired: DesiredState) -> list[VulnerabilityService]:
        """The configured vulnerability services, with the HTTP cache."""
        return wiring.make_services(desired, default_cache_dir(), self.runtime)


def run(common: Common, body: Callable[[], int]) -> None:
    """Run a command body; expected errors become one line on stderr and exit 1.

    Ctrl-C while an apply places files cancels it cleanly (the applier stops and says what it
    left undone); anywhere else it interrupts at once. Both exit 130.
    """
    if common.debug:
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    cancel = common.runtime.cancel
    try:
        with _interrupts_to(cancel):
            code = body()
    except click.exceptions.Abort:  # a prompt left with Ctrl-C (130) or at the end of input
        typer.echo("error: interrupted" if cancel.interrupted else "error: no answer", err=True)
        raise typer.Exit(130 if cancel.interrupted else 1) from None
    except ReconcilerError as error:
        if common.debug:
            raise
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    except OSError as error:  # the machine said no: permissions, a full disk, a missing mount
        if common.debug:
            raise
        where = f"{error.filename}: " if error.filename else ""
        typer.echo(f"error: {where}{error.strerror or error}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo("error: interrupted", err=True)
        raise typer.Exit(130) from None
    except Exception as error:  # a bug: still one line, and a way to see more
        if common.debug:
            raise
        what = (str(error).splitlines() or [""])[0][:200]
        typer.echo(
            f"error: internal error ({type(error).__name__}: {what}); this is a bug in the "
            "mirror: rerun with --debug for the traceback",
            err=True,
        )
        raise typer.Exit(1) from None
    raise typer.Exit(code)


@contextmanager
def _interrupts_to(cancel: Cancellation) -> Iterator[None]:
    """Route SIGINT to `cancel` while inside (signals reach the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda _signum, _frame: cancel.interrupt())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)

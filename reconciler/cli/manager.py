"""`mirror-manager`: the older interface, kept. sync = a plan's uploads, audit = its deletions."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from reconciler import operations
from reconciler.cli.console import (
    make_progress,
    report_result,
    say,
    show_and_confirm,
    table_format,
)
from reconciler.cli.options import (
    CONTEXT_SETTINGS,
    Common,
    DebugOption,
    DesiredStateOption,
    NowOption,
    RegistryOption,
    VersionOption,
    run,
    runtime_of,
)
from reconciler.model import ActionKind

app = typer.Typer(
    name="mirror-manager",
    help="The older interface: sync uploads, audit deletes (quarantines and prunes).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings=CONTEXT_SETTINGS,
)


@app.callback()
def main(version: VersionOption = False) -> None:
    """The older interface: sync uploads, audit deletes (quarantines and prunes)."""


DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Only print what would change.")]


def _run_part(kind: ActionKind, common: Common, dry_run: bool, allow_mass_delete: bool) -> None:
    """Plan, keep the actions of one kind, and apply them: on a terminal after showing them
    and asking (like `mirror apply`), in CI at once (as this interface always did)."""

    def body() -> int:
        desired = common.desired()
        target = common.make_registry(desired)
        upstream = common.make_upstream(desired)
        services = common.make_services(desired)
        if dry_run:
            the_plan = operations.make_plan(
                desired,
                target.list_actual(),
                upstream,
                services,
                common.now(),
                common.runtime.clock,
            ).only(kind)
            typer.echo(table_format().render(the_plan), nl=False)
            say("Dry run: nothing changed.")
            return 0
        on_terminal = sys.stdin.isatty()  # someone to ask, as `mirror apply` decides
        the_plan, outcome = operations.plan_and_apply(
            desired,
            target,
            upstream,
            services,
            common.now(),
            approve=lambda p: show_and_confirm(p, auto_approve=not on_terminal),
            progress=make_progress(),
            allow_mass_delete=allow_mass_delete,
            clock=common.runtime.clock,
            cancel=common.runtime.cancel,
            only=kind,
            history=common.history(),
        )
        if outcome is not None:
            return report_result(outcome)
        if the_plan.has_changes:
            typer.echo("Cancelled; nothing changed.", err=True)
            return 1
        say("Nothing to do.")
        return 0

    run(common, body)


@app.command()
def sync(
    ctx: typer.Context,
    dry_run: DryRunOption = False,
    desired_state: DesiredStateOption = Path("desired-state"),
    registry: RegistryOption = None,
    now: NowOption = None,
    debug: DebugOption = False,
) -> None:
    """Upload what the plan uploads (no deletions)."""
    _run_part(
        ActionKind.UPLOAD,
        Common(desired_state, registry, now, debug, runtime_of(ctx)),
        dry_run,
        False,
    )


@app.command()
def audit(
    ctx: typer.Context,
    dry_run: DryRunOption = False,
    allow_mass_delete: Annotated[
        bool, typer.Option("--allow-mass-delete", help="Allow more than policy.max_deletions.")
    ] = False,
    desired_state: DesiredStateOption = Path("desired-state"),
    registry: RegistryOption = None,
    now: NowOption = None,
    debug: DebugOption = False,
) -> None:
    """Delete what the plan deletes: quarantines and versions no longer desired."""
    _run_part(
        ActionKind.DELETE,
        Common(desired_state, registry, now, debug, runtime_of(ctx)),
        dry_run,
        allow_mass_delete,
    )

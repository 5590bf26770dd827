"""The `mirror` command: plan, apply, show, comment, drift, serve, force-unlock."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from reconciler import notes, operations, planfile, report, wiring
from reconciler.cli.console import (
    is_terminal,
    make_progress,
    report_result,
    say,
    show_and_confirm,
    table_format,
    terminal_width,
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
from reconciler.desired.starter import write_starter
from reconciler.errors import MassDeleteError, UserError
from reconciler.model import DesiredState, Plan
from reconciler.registry import DirectoryRegistry
from reconciler.serve import make_server

app = typer.Typer(
    name="mirror",
    help="Keep a quarantined PyPI mirror in the state desired-state/ describes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings=CONTEXT_SETTINGS,
)


@app.callback()
def main(version: VersionOption = False) -> None:
    """Keep a quarantined PyPI mirror in the state desired-state/ describes."""


FormatOption = Annotated[
    report.FormatName, typer.Option("--format", help="How to render the plan.")
]
AllowMassDeleteOption = Annotated[
    bool,
    typer.Option("--allow-mass-delete", help="Allow more deletions than policy.max_deletions."),
]


@app.command()
def plan(
    ctx: typer.Context,
    out: Annotated[Path | None, typer.Option("--out", help="Save the plan file here.")] = None,
    format: FormatOption = report.FormatName.TABLE,
    detailed_exitcode: Annotated[
        bool, typer.Option("--detailed-exitcode", help="Exit 2 when there are changes.")
    ] = False,
    allow_mass_delete: AllowMassDeleteOption = False,
    against: Annotated[
        str | None,
        typer.Option(
            "--against",
            help="A merge request's target branch head (fetched): what its desired state "
            "plans anyway is reported apart, in one line.",
        ),
    ] = None,
    desired_state: DesiredStateOption = Path("desired-state"),
    registry: RegistryOption = None,
    now: NowOption = None,
    debug: DebugOption = False,
) -> None:
    """Compute the plan: what apply would upload, delete and quarantine, and what is blocked."""
    common = Common(desired_state, registry, now, debug, runtime_of(ctx))

    def body() -> int:
        desired = common.desired()
        # A plan reads the registry's record of its files (GitLab: the listing's pages, not
        # one request per package); applies and drifts list every file again.
        actual = common.make_registry(desired).list_actual(recorded=True)
        upstream, services = common.make_upstream(desired), common.make_services(desired)
        now, clock = common.now(), common.runtime.clock

        def plan_for(desired: DesiredState) -> Plan:
            return operations.make_plan(desired, actual, upstream, services, now, clock)

        the_plan = plan_for(desired)
        if against is not None:
            the_plan = operations.compared_with(the_plan, desired_state, against, plan_for)
        if out is not None:
            _write_plan(out, the_plan)
        typer.echo(
            report.make_format(format, is_terminal(), terminal_width()).render(the_plan), nl=False
        )
        operations.check_deletion_limit(
            the_plan, desired.config.policy.max_deletions, allow_mass_delete
        )
        return 2 if detailed_exitcode and the_plan.has_changes else 0

    run(common, body)


@app.command()
def apply(
    ctx: typer.Context,
    plan_file: Annotated[
        Path | None, typer.Argument(metavar="[PLAN]", help="A plan saved by `mirror plan --out`.")
    ] = None,
    auto_approve: Annotated[
        bool, typer.Option("--auto-approve", help="Apply without asking.")
    ] = False,
    allow_mass_delete: AllowMassDeleteOption = False,
    allow_older_state: Annotated[
        bool,
        typer.Option(
            "--allow-older-state",
            help="Apply a desired state older (in git) than the one the registry last applied.",
        ),
    ] = False,
    desired_state: DesiredStateOption = Path("desired-state"),
    registry: RegistryOption = None,
    now: NowOption = None,
    debug: DebugOption = False,
) -> None:
    """Apply a saved plan (refusing a stale one), or plan and apply in one go."""
    common = Common(desired_state, registry, now, debug, runtime_of(ctx))

    def body() -> int:
        desired = common.desired()
        target = common.make_registry(desired)
        upstream = common.make_upstream(desired)
        if plan_file is not None:
            saved = planfile.read_plan(plan_file)
            operations.check_deletion_limit(
                saved, desired.config.policy.max_deletions, allow_mass_delete
            )
            result = operations.apply_saved(
                saved,
                desired,
                target,
                upstream,
                common.make_services(desired),
                make_progress(),
                common.runtime.clock,
                common.runtime.cancel,
                common.history(allow_older_state),
            )
            return report_result(result)
        if not auto_approve and not sys.stdin.isatty():
            raise UserError(
                "refusing to apply without confirmation: no terminal to ask on; "
                "pass --auto-approve or apply a saved plan"
            )
        the_plan, outcome = operations.plan_and_apply(
            desired,
            target,
            upstream,
            common.make_services(desired),
            common.now(),
            approve=lambda p: show_and_confirm(p, auto_approve),
            progress=make_progress(),
            allow_mass_delete=allow_mass_delete,
            clock=common.runtime.clock,
            cancel=common.runtime.cancel,
            history=common.history(allow_older_state),
        )
        if outcome is not None:
            return report_result(outcome)
        if the_plan.has_changes:  # shown, and not approved: like Terraform, not a success
            typer.echo("Apply cancelled; nothing changed.", err=True)
            return 1
        typer.echo(table_format().render(the_plan), nl=False)
        return 0

    run(common, body)


@app.command()
def show(
    ctx: typer.Context,
    plan_file: Annotated[Path, typer.Argument(metavar="PLAN", help="A saved plan file.")],
    format: FormatOption = report.FormatName.TABLE,
    debug: DebugOption = False,
) -> None:
    """Render a saved plan."""
    common = Common(Path("desired-state"), None, None, debug, runtime_of(ctx))

    def body() -> int:
        rendered = report.make_format(format, is_terminal(), terminal_width()).render(
            planfile.read_plan(plan_file)
        )
        typer.echo(rendered, nl=False)
        return 0

    run(common, body)


@app.command()
def comment(
    ctx: typer.Context,
    plan_file: Annotated[Path, typer.Argument(metavar="PLAN", help="A saved plan file.")],
    applied: Annotated[
        bool,
        typer.Option(
            "--applied",
            help="After an apply on the default branch: post the applied plan to the merge "
            "request that brought the commit in, saying how it differs from the reviewed one.",
        ),
    ] = False,
    debug: DebugOption = False,
) -> None:
    """Post the plan as a note on the merge request, updating the mirror's earlier note.

    Needs CI_API_V4_URL, CI_PROJECT_ID, MIRROR_NOTE_TOKEN and CI_MERGE_REQUEST_IID (with
    --applied: CI_COMMIT_SHA).
    """
    common = Common(Path("desired-state"), None, None, debug, runtime_of(ctx))

    def body() -> int:
        the_plan = planfile.read_plan(plan_file)
        if not applied:
            target = wiring.make_merge_request_notes(common.runtime)
            outcome, note_id = target.upsert(notes.note_body(the_plan))
            typer.echo(f"{outcome.capitalize()} the plan note (note {note_id}).")
            return 0
        merged = wiring.make_merged_request_notes(common.runtime)
        if merged is None:
            typer.echo("No merge request brought this commit in; no note.")
            return 0
        text = notes.applied_body(the_plan, merged.body_of(), the_plan.desired_commit)
        outcome, note_id = merged.upsert(text, notes.APPLIED_MARKER)
        typer.echo(
            f"{outcome.capitalize()} the applied-plan note on !{merged.iid} (note {note_id})."
        )
        return 0

    run(common, body)


@app.command()
def drift(
    ctx: typer.Context,
    report_only: Annotated[
        bool, typer.Option("--report-only", help="Report the drift; change nothing.")
    ] = False,
    report_dir: Annotated[
        Path,
        typer.Option("--report-dir", help="Where to write drift-report.md and drift-report.json."),
    ] = Path("."),
    allow_mass_delete: AllowMassDeleteOption = False,
    desired_state: DesiredStateOption = Path("desired-state"),
    registry: RegistryOption = None,
    now: NowOption = None,
    debug: DebugOption = False,
) -> None:
    """The nightly job: quarantine what must go, apply what matured, report all drift.

    Exit 0: no drift; 2: drift found (and applied, unless --report-only); 1: error.
    """
    common = Common(desired_state, registry, now, debug, runtime_of(ctx))

    def body() -> int:
        desired = common.desired()
        found = operations.drift(
            desired,
            common.make_registry(desired),
            common.make_upstream(desired),
            common.make_services(desired),
            common.now(),
            make_progress(),
            report_only=report_only,
            allow_mass_delete=allow_mass_delete,
            announce=lambda p: typer.echo(table_format().render(p), nl=False),
            clock=common.runtime.clock,
            cancel=common.runtime.cancel,
            history=common.history(),
        )
        markdown_path, json_path = report_dir / "drift-report.md", report_dir / "drift-report.json"
        _write_text(markdown_path, found.to_markdown(), "the drift report")
        _write_text(json_path, found.to_json(), "the drift report")
        typer.echo(f"Drift report: {markdown_path} and {json_path}")
        code = 2 if found.drifted else 0
        if found.result is not None:
            code = report_result(found.result) or code
        if found.refusal is not None:
            raise MassDeleteError(found.refusal, found.plan)
        return code

    run(common, body)


@app.command()
def serve(
    ctx: typer.Context,
    directory: Annotated[
        Path | None,
        typer.Argument(
            metavar="[DIRECTORY]",
            help="The registry directory (default: the directory registry of the config).",
        ),
    ] = None,
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port to listen on (0: any free one).")
    ] = 8080,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    desired_state: DesiredStateOption = Path("desired-state"),
    debug: DebugOption = False,
) -> None:
    """Serve the directory registry read-only, negotiating PEP 691 JSON or PEP 503 HTML."""
    common = Common(desired_state, None, None, debug, runtime_of(ctx))

    def body() -> int:
        root = directory if directory is not None else _configured_directory(common)
        if not (root / "simple" / "index.html").is_file():
            typer.echo(
                f"warning: {root} holds no registry yet (no simple/index.html): every page "
                "answers 404 until `mirror apply` writes one",
                err=True,
            )
        server = make_server(root, host, port)
        address, bound = server.server_address[:2]
        typer.echo(f"Serving {root} at http://{address!s}:{bound}/simple/ (Ctrl-C stops)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:  # Ctrl-C is how a server is stopped, not an error
            pass
        finally:
            server.server_close()
        return 0

    run(common, body)


def _configured_directory(common: Common) -> Path:
    """The directory of the directory registry the desired state's config names."""
    target = common.make_registry(common.desired())
    if not isinstance(target, DirectoryRegistry):
        raise UserError(
            "mirror serve serves a directory registry (registry.type: directory), or the "
            "directory you name"
        )
    return target.root


@app.command()
def init(
    ctx: typer.Context,
    desired_state: DesiredStateOption = Path("desired-state"),
    debug: DebugOption = False,
) -> None:
    """Write a commented starting desired state: config.yaml and requirements.txt."""
    common = Common(desired_state, None, None, debug, runtime_of(ctx))

    def body() -> int:
        for path in write_starter(desired_state):
            typer.echo(f"Wrote {path}")
        say(
            "Add requirements to requirements.txt, then `mirror plan` shows what the mirror "
            "would hold and why."
        )
        return 0

    run(common, body)


@app.command("force-unlock")
def force_unlock(
    ctx: typer.Context,
    lock_id: Annotated[str, typer.Argument(metavar="LOCK_ID", help="The id the lock error named.")],
    desired_state: DesiredStateOption = Path("desired-state"),
    registry: RegistryOption = None,
    debug: DebugOption = False,
) -> None:
    """Remove a stuck lock left by an apply that died."""
    common = Common(desired_state, registry, None, debug, runtime_of(ctx))

    def body() -> int:
        target = common.make_registry(common.desired())
        holder = target.force_unlock(lock_id)
        typer.echo(f"Removed lock {holder.id} held by {holder.owner}.")
        return 0

    run(common, body)


def _write_plan(path: Path, the_plan: Plan) -> None:
    _write_text(path, planfile.to_json(the_plan), "the plan")


def _write_text(path: Path, text: str, what: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise UserError(f"cannot write {what}: {error.strerror}", path=path) from None

"""The `taskplan` command: run the embedded stack, serve the API, run a worker, operate plans (HELP below).

Parsing is typer's; the operator commands' work and output are taskplan/operator.py's, and `taskplan worker`
hands its arguments to worker.py's own parser. This module is the CLI process's composition root: a
command that needs the settings reads them here, once. `main` returns the exit code typer would exit with.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from taskplan.settings import Settings, SettingsError, load_settings


def lazy_module(name: str) -> types.ModuleType:
    """The module ``name``, imported at its first attribute access (importlib's LazyLoader)."""
    spec = importlib.util.find_spec(name)
    assert spec is not None
    assert spec.loader is not None
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


if TYPE_CHECKING:
    from taskplan import operator
else:  # the operator commands' module (httpx, rich's tables): loaded when one of them first needs it, so
    # that `taskplan run`, `taskplan api` and `taskplan worker` start without it (start-up, README)
    operator = lazy_module("taskplan.operator")

# Help for `taskplan --help`; \b keeps the examples' lines as they are.
HELP = """Run the embedded stack, serve the API, run a worker, operate plans.

\b
taskplan run                 # everything, in the foreground (what `make run` does)
taskplan api [--port 9000]   # the REST API only
taskplan worker --role minion --tag minion_untagged
taskplan execute SegmentPurgeTask sales_OFFLINE -c "purgeFilter=country = 'US'"
taskplan plans list | show ID | watch ID | abort ID | pause ID | resume ID   (--json for scripts)
taskplan tables
taskplan segments sales
taskplan schedule --task-type SegmentPurgeTask
taskplan db upgrade          # migrate the catalog (DDL rights); processes refuse one behind or ahead
taskplan setup               # create the Temporal namespace if missing, register the search attributes
taskplan hash-password       # an argon2 hash for a principal's password property (prompts, or reads stdin)

Exit codes: 0 success, 1 a watched plan ended other than COMPLETED, `setup` or `db upgrade` failed, or a
process refused to start (Temporal unreachable or unprepared, catalog not at its revision: the message says
which), 2 a usage error, invalid settings, or the API refused the request or is down.
"""


@dataclass
class Root:
    """What the top-level options say, handed to every command through typer's context."""

    config: str | None

    def settings(self) -> Settings:
        try:
            return load_settings(self.config)
        except SettingsError as exc:
            operator.console_for(sys.stderr).print(f"error: {exc}", style="red")
            raise typer.Exit(2) from None


app = typer.Typer(
    name="taskplan",
    help=HELP,
    rich_markup_mode=None,  # plain help: HELP's examples keep their lines and brackets
    add_completion=False,
    pretty_exceptions_enable=False,  # a traceback with locals would print the settings' secrets
)
plans_app = typer.Typer(help="list, show, watch, abort, pause or resume task plans", rich_markup_mode=None)
app.add_typer(plans_app, name="plans")
db_app = typer.Typer(
    help="the catalog database: upgrade its schema, show its revision", rich_markup_mode=None
)
app.add_typer(db_app, name="db")


@app.callback()
def _root(
    ctx: typer.Context,
    config: Annotated[str | None, typer.Option(help="properties file (default: $TASKPLAN_CONFIG)")] = None,
) -> None:
    ctx.obj = Root(config)


@app.command("run")
def run_command(
    ctx: typer.Context,
    ui_port: Annotated[
        int | None, typer.Option("--ui-port", help="Temporal Web UI port (default: gRPC port + 1000)")
    ] = None,
) -> None:
    """Start the embedded stack in the foreground."""
    from taskplan.runtime import run_stack

    root: Root = ctx.obj
    raise typer.Exit(run_stack(root.settings(), root.config, ui_port))


@app.command("api")
def api_command(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
) -> None:
    """Serve the REST API."""
    from taskplan.api.server import serve

    root: Root = ctx.obj
    raise typer.Exit(serve(root.settings(), root.config, host=host, port=port))


@app.command(
    "worker",
    # Everything after `worker`, --help included, is worker.py's own argparse's to read.
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
def worker_command(ctx: typer.Context) -> None:
    """Run a worker (options: taskplan worker --help)."""
    from taskplan import worker

    root: Root = ctx.obj
    given = ["--config", root.config] if root.config and "--config" not in ctx.args else []
    worker.main([*given, *ctx.args])


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Run the catalog's migrations up to this taskplan's revision (idempotent; needs DDL rights)."""
    from taskplan.bootstrap import open_catalog

    root: Root = ctx.obj
    settings = root.settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    catalog = open_catalog(settings)
    console = Console()
    try:
        before, after = catalog.migrate()
    except Exception as exc:  # the database refused (rights, connection): say so, without a traceback
        operator.console_for(sys.stderr).print(f"error: catalog upgrade failed: {exc}", style="red")
        raise typer.Exit(1) from None
    finally:
        catalog.close()
    where = catalog.engine.url.render_as_string(hide_password=True)
    if before == after:
        console.print(f"catalog {where}: already at revision {after}, nothing to do")
    else:
        console.print(f"catalog {where}: upgraded from revision {before or 'none'} to {after}")


@db_app.command("revision")
def db_revision(ctx: typer.Context) -> None:
    """Show the catalog's revision and this taskplan's (exit 1 when they differ)."""
    from taskplan.bootstrap import open_catalog
    from taskplan.catalog.catalog import code_revision

    root: Root = ctx.obj
    catalog = open_catalog(root.settings())
    try:
        theirs = catalog.revision()
    finally:
        catalog.close()
    ours = code_revision()
    Console().print(f"catalog revision {theirs or 'none'}; this taskplan's {ours}")
    raise typer.Exit(0 if theirs == ours else 1)


@app.command("setup")
def setup_command(
    ctx: typer.Context,
    retention_days: Annotated[
        int | None,
        typer.Option(
            "--retention-days",
            min=1,
            help="retention of a namespace setup creates (default: temporal.namespace.retentionDays, 7)",
        ),
    ] = None,
) -> None:
    """Prepare Temporal: create the namespace if missing, register the search attributes (idempotent)."""
    import asyncio

    from rich.table import Table as RichTable
    from temporalio.service import RPCError

    from taskplan.temporal import TemporalConnectError, connect, describe_connection
    from taskplan.temporal_setup import ClusterNotReady, Step, setup_cluster

    root: Root = ctx.obj
    settings = root.settings()
    days = retention_days or settings.temporal_namespace_retention_days

    async def prepare() -> list[Step]:
        client = await connect(settings)
        return await setup_cluster(client, settings, days)

    try:
        steps = asyncio.run(prepare())
    except (TemporalConnectError, ClusterNotReady, RPCError) as exc:
        operator.console_for(sys.stderr).print(f"error: taskplan setup failed: {exc}", style="red")
        raise typer.Exit(1) from None
    table = RichTable(title=f"Temporal at {settings.temporal_address} ({describe_connection(settings)})")
    for column in ("what", "name", "result"):
        table.add_column(column)
    for step in steps:
        table.add_row(step.what, step.name, step.result)
    console = Console(width=max(120, Console().width))
    console.print(table)
    changed = any(not step.result.startswith(("exists", "already")) for step in steps)
    console.print(
        f"namespace {settings.temporal_namespace} is ready for taskplan"
        + ("" if changed else " (nothing to do: it already was)")
    )


@app.command("hash-password")
def hash_password_command() -> None:
    """Print a salted argon2id hash of a password, for a principal's `password` property.

    On a terminal the password is prompted for twice, unechoed; otherwise the first line of stdin is read
    (`printf '%s' "$PW" | taskplan hash-password`). Never pass it as an argument: it would stay in the
    shell's history and in the process list.
    """
    from taskplan.api.passwords import hash_password

    if sys.stdin.isatty():
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    if not password:
        operator.console_for(sys.stderr).print("error: an empty password", style="red")
        raise typer.Exit(2)
    print(hash_password(password))


# Options every operator command takes.
Url = Annotated[str | None, typer.Option(help="REST API (default: $TASKPLAN_URL or controller.host/port)")]
Json = Annotated[bool, typer.Option("--json", help="print the API's JSON")]
Table = Annotated[str | None, typer.Option("--table")]
TaskType = Annotated[str | None, typer.Option("--task-type")]
PlanId = Annotated[str, typer.Argument(metavar="PLAN_ID")]


def _operate(ctx: typer.Context, url: str | None, command: Callable[[operator.Api, Console], int]) -> None:
    address = url or os.environ.get("TASKPLAN_URL")
    if not address:
        root: Root = ctx.obj  # subcommands inherit the root's object
        settings = root.settings()
        scheme = "https" if settings.api_tls_cert_file else "http"
        address = f"{scheme}://{settings.controller_host}:{settings.controller_port}"
    raise typer.Exit(operator.run(command, address))


@app.command()
def execute(
    ctx: typer.Context,
    task_type: Annotated[str, typer.Argument(metavar="TASK_TYPE")],
    table: Annotated[str, typer.Argument(metavar="TABLE")],
    task_configs: Annotated[
        list[str] | None,
        typer.Option("-c", "--config", metavar="KEY=VALUE", help="a task config (repeatable)"),
    ] = None,
    legacy: Annotated[
        bool, typer.Option("--legacy", help="one-shot batch: no enableTaskOrchestration")
    ] = False,
    url: Url = None,
    as_json: Json = False,
) -> None:
    """Trigger a task (a plan when orchestrated)."""
    _operate(
        ctx,
        url,
        partial(
            operator.execute,
            task_type=task_type,
            table=table,
            task_configs=task_configs or [],
            legacy=legacy,
            as_json=as_json,
        ),
    )


@plans_app.command("list")
def plans_list(
    ctx: typer.Context,
    table: Table = None,
    task_type: TaskType = None,
    url: Url = None,
    as_json: Json = False,
) -> None:
    """Active plans."""
    _operate(ctx, url, partial(operator.plans_list, table=table, task_type=task_type, as_json=as_json))


@plans_app.command("show")
def plans_show(
    ctx: typer.Context,
    plan_id: PlanId,
    batches: Annotated[int, typer.Option(help="most recent batch records shown")] = 20,
    url: Url = None,
    as_json: Json = False,
) -> None:
    """One plan."""
    _operate(ctx, url, partial(operator.plans_show, plan_id=plan_id, batches=batches, as_json=as_json))


@plans_app.command("watch")
def plans_watch(
    ctx: typer.Context,
    plan_id: PlanId,
    interval: Annotated[float, typer.Option(help="seconds between polls")] = 1.0,
    url: Url = None,
    as_json: Json = False,
) -> None:
    """Follow a plan to its end (exit 0 only if it COMPLETED)."""
    _operate(ctx, url, partial(operator.plans_watch, plan_id=plan_id, interval=interval, as_json=as_json))


@plans_app.command("abort")
def plans_abort(ctx: typer.Context, plan_id: PlanId, url: Url = None, as_json: Json = False) -> None:
    """Abort a plan."""
    _operate(ctx, url, partial(operator.plans_abort, plan_id=plan_id, as_json=as_json))


Reason = Annotated[str, typer.Option("--reason", help="why (shown in the plan's status message)")]


@plans_app.command("pause")
def plans_pause(
    ctx: typer.Context, plan_id: PlanId, reason: Reason = "", url: Url = None, as_json: Json = False
) -> None:
    """Pause a plan: no new batch until resumed (the running batch finishes)."""
    partial_call = partial(
        operator.plans_pause, plan_id=plan_id, resume=False, reason=reason, as_json=as_json
    )
    _operate(ctx, url, partial_call)


@plans_app.command("resume")
def plans_resume(
    ctx: typer.Context, plan_id: PlanId, reason: Reason = "", url: Url = None, as_json: Json = False
) -> None:
    """Resume a paused plan."""
    partial_call = partial(operator.plans_pause, plan_id=plan_id, resume=True, reason=reason, as_json=as_json)
    _operate(ctx, url, partial_call)


@app.command()
def tables(ctx: typer.Context, url: Url = None, as_json: Json = False) -> None:
    """Tables and their task types."""
    _operate(ctx, url, partial(operator.tables, as_json=as_json))


@app.command()
def segments(
    ctx: typer.Context,
    table: Annotated[str, typer.Argument(help="a table name, raw or with its type")],
    url: Url = None,
    as_json: Json = False,
) -> None:
    """A table's segments with their metadata (docs, bytes, status, time range)."""
    _operate(ctx, url, partial(operator.segments, table=table, as_json=as_json))


@app.command()
def schedule(
    ctx: typer.Context,
    task_type: TaskType = None,
    table: Table = None,
    url: Url = None,
    as_json: Json = False,
) -> None:
    """Run one trigger cycle now."""
    _operate(ctx, url, partial(operator.schedule, task_type=task_type, table=table, as_json=as_json))


def main(argv: Sequence[str] | None = None) -> int:
    """The `taskplan` script: typer runs the command and exits; its exit code is returned here instead."""
    try:
        app(args=None if argv is None else list(argv), prog_name="taskplan")
    except SystemExit as done:
        if done.code is None or isinstance(done.code, int):
            return done.code or 0
        print(done.code, file=sys.stderr)  # sys.exit("message"), as Python itself reports it
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

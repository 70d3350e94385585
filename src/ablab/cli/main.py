"""The ``ablab`` command. User errors (AblabError) print a message and exit 2; ``--debug``
shows the traceback."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ablab.cli import reportcmd, runcmd
from ablab.cli.common import STATE, err_console

app = typer.Typer(
    name="ablab",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Trustworthy model experiments: ablation studies over seeds with real statistics, "
    "loss-landscape diagnosis, layer-wise OOD probing.",
)


def _version(value: bool) -> None:
    if value:
        from ablab._version import __version__

        print(f"ablab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    STATE["debug"] = debug


app.command("run")(runcmd.run)
app.command("status")(runcmd.status)
app.command("runs")(runcmd.runs)
app.command("show")(runcmd.show)
app.command("report")(reportcmd.report)


def _register_optional() -> None:
    """Command groups that live in their own modules (probe, diagnosis, reproduction)."""
    import importlib

    for module, attr, name, kind in (
        ("ablab.cli.probe", "probe_command", "probe", "command"),
        ("ablab.cli.mdtree", "diagnose_command", "diagnose", "command"),
        ("ablab.cli.mdtree", "app", "mdtree", "group"),
        ("ablab.cli.reproduce", "reproduce", "reproduce", "command"),
        ("ablab.cli.reproduce", "check_determinism", "check-determinism", "command"),
        ("ablab.cli.bundle", "export", "export", "command"),
        ("ablab.cli.bundle", "import_", "import", "command"),
        ("ablab.cli.logs", "logs", "logs", "command"),
        ("ablab.cli.sync", "sync", "sync", "command"),
        ("ablab.cli.serve", "serve", "serve", "command"),
        ("ablab.cli.initcmd", "init", "init", "command"),
    ):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
            continue
        obj = getattr(mod, attr, None)
        if obj is None:
            continue
        if kind == "group":
            app.add_typer(obj, name=name)
        else:
            app.command(name)(obj)


_register_optional()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    from ablab.errors import AblabError

    try:
        rv = app(args=argv, standalone_mode=False)
        if isinstance(rv, int):
            return rv
    except AblabError as e:
        if STATE["debug"]:
            import traceback

            traceback.print_exc()
        from ablab.termtext import safe

        err_console.print(f"[bold red]error:[/] {safe(e.message)}", highlight=False, soft_wrap=True)
        if e.hint:
            err_console.print(f"[yellow]hint:[/] {safe(e.hint)}", highlight=False, soft_wrap=True)
        return e.exit_code
    except typer.Exit as e:
        return e.exit_code
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except Exception as e:  # usage errors (typer vendors its own copy of click's exceptions)
        names = {c.__name__ for c in type(e).__mro__}
        if "ClickException" in names:
            e.show()  # type: ignore[attr-defined]
            return int(getattr(e, "exit_code", 2))
        if "Abort" in names:
            return 130
        raise
    return 0


def entry() -> None:
    sys.exit(main())

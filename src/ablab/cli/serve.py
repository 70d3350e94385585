"""`ablab serve`: a local read-only web dashboard over one or more stores."""

from __future__ import annotations

import ipaddress
import secrets
import socket
from pathlib import Path
from typing import Annotated

import typer

from ablab.cli.common import console
from ablab.errors import AblabError

LOOPBACK_NAMES = ["127.0.0.1", "localhost", "::1", "[::1]"]


def serve(
    study_files: Annotated[
        list[Path] | None,
        typer.Argument(help="Study files whose stores to show.", show_default=False),
    ] = None,
    store: Annotated[
        list[Path] | None, typer.Option("--store", help="A store directory (repeatable).")
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port (0: a free one).")] = 8765,
    token: Annotated[
        str | None,
        typer.Option(
            "--token", help="Access token (default: none on loopback, generated otherwise)."
        ),
    ] = None,
) -> None:
    """Serve studies, runs, live progress, comparisons and reports at http://HOST:PORT/.
    Read-only: it never writes to a store or blocks a running study."""
    from ablab.serve import make_app

    if not 0 <= port <= 65535:
        raise AblabError(f"--port {port}: expected 0..65535")
    loopback = _is_loopback(host)
    if not loopback and token is None:
        token = secrets.token_urlsafe(24)
    if token is not None and len(token) < 16:
        raise AblabError("--token: use at least 16 characters (or omit it to get a generated one)")
    dirs = _stores(study_files or [], store or [])
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
    except OSError as e:
        raise AblabError(
            f"cannot listen on {host}:{port}: {e.strerror or e}",
            hint="choose another --port (0 picks a free one)",
        ) from None
    real_port = sock.getsockname()[1]
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    hosts = LOOPBACK_NAMES if loopback else ["*"]
    app = make_app(dirs, token=token, hosts=hosts)
    url = f"http://{shown}:{real_port}/"
    from ablab.termtext import safe

    console.print(
        safe(f"ablab serve: {len(dirs)} store(s): " + ", ".join(map(str, dirs))), highlight=False
    )
    console.print(safe(url + (f"?token={token}" if token else "")), highlight=False, soft_wrap=True)
    if token and not loopback:
        console.print(
            "this token is shown once; anyone with it can read these studies", highlight=False
        )
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass


def _is_loopback(host: str) -> bool:
    name = host.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _stores(study_files: list[Path], stores: list[Path]) -> list[Path]:
    from ablab.api import default_store_dir
    from ablab.spec.load import load_study
    from ablab.store.db import DB_NAME

    dirs = [default_store_dir(load_study(f)) for f in study_files] + list(stores)
    if not dirs:
        here = Path.cwd() / ".ablab"
        dirs = (
            [here]
            if (here / DB_NAME).exists()
            else sorted(
                {p.parent for p in Path.cwd().glob("*/.ablab/" + DB_NAME)}
                | {p.parent for p in Path.cwd().glob("*/*/.ablab/" + DB_NAME)}
            )
        )
        if not dirs:
            raise AblabError(
                "ablab serve: no store found in or below the current directory",
                hint="give study files or --store DIR",
            )
    out = []
    for d in dirs:
        if not (Path(d) / DB_NAME).is_file():
            raise AblabError(
                f"{d}: no ablab store here (no {DB_NAME})",
                hint="run the study first, or give the .ablab folder beside its study file",
            )
        if Path(d).resolve() not in [o.resolve() for o in out]:
            out.append(Path(d))
    return out

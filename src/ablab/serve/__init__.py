"""``ablab serve``: a local, read-only web dashboard over one or more stores.

    from ablab.serve import make_app
    app = make_app([Path("examples/digits/.ablab")])   # an ASGI app (Starlette)

It reads through ``results``/``store`` (SQLite opened read-only) and renders with ``report``'s
escaping and builders; it never writes.
"""

from __future__ import annotations

from ablab.serve.app import make_app

__all__ = ["make_app"]

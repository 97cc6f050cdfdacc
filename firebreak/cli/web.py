"""`firebreak web`: the approval pages and the crisis page."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:  # type: ignore[no-untyped-def]
    web = subparsers.add_parser("web", help="serve the approval pages and the crisis page")
    web.set_defaults(func=cmd_web)


def cmd_web(args: argparse.Namespace) -> int:
    serve_web()
    return 0


def serve_web() -> None:
    import uvicorn

    from firebreak.web.app import create_app
    from firebreak.flows.runtime import get_runtime

    rt = get_runtime()
    uvicorn.run(create_app(), host=rt.settings.web_host, port=rt.settings.web_port, log_level="warning")

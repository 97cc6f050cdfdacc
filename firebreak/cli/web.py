"""`firebreak web`: the approval, acknowledgement and status pages on their own (`firebreak up`
serves them too). The pages answer paused runs, so they need the Prefect server the runs are
on: PREFECT_API_URL, or the local `firebreak up` server when one answers. Without one they
refuse to start, rather than start a throwaway server that no run is waiting on."""

from __future__ import annotations

import argparse
import os

from firebreak.errors import ConfigError

LOCAL_UP_API = "http://127.0.0.1:4200/api"  # `firebreak up`'s default


def register(subparsers) -> None:  # type: ignore[no-untyped-def]
    web = subparsers.add_parser("web", help="serve the approval pages and the crisis page")
    web.add_argument("--host", default=None, help="default FIREBREAK_WEB_HOST or 127.0.0.1")
    web.add_argument("--port", type=int, default=None, help="default FIREBREAK_WEB_PORT or 8788")
    web.add_argument("--prefect-api", default=None,
                     help=f"the Prefect server's API (default PREFECT_API_URL, else {LOCAL_UP_API} if it answers)")
    web.set_defaults(func=cmd_web)


def prefect_api(explicit: str | None = None) -> str:
    """The Prefect API the pages answer runs on; ConfigError, saying what to do, when none answers."""
    import httpx

    configured = explicit or os.environ.get("PREFECT_API_URL", "")
    url = (configured or LOCAL_UP_API).rstrip("/")
    try:
        ok = httpx.get(f"{url}/health", timeout=3.0).status_code == 200
    except httpx.HTTPError:
        ok = False
    if ok:
        return url
    if configured:
        raise ConfigError(f"the Prefect server at {url} does not answer; start it (firebreak up) or fix PREFECT_API_URL")
    raise ConfigError("the pages answer runs paused on a Prefect server, and none was given: set PREFECT_API_URL "
                      f"(firebreak up prints it) or pass --prefect-api; nothing answers at {LOCAL_UP_API}")


def cmd_web(args: argparse.Namespace) -> int:
    api = prefect_api(args.prefect_api)
    os.environ["PREFECT_API_URL"] = api  # before anything reads Prefect's settings
    serve_web(args.host, args.port, api)
    return 0


def serve_web(host: str | None = None, port: int | None = None, api: str = "") -> None:
    import uvicorn

    from firebreak.flows.runtime import get_runtime
    from firebreak.web.app import create_app

    rt = get_runtime()
    host, port = host or rt.settings.web_host, port or rt.settings.web_port
    print(f"Firebreak pages on http://{host}:{port} (links in messages use {rt.settings.public_url}); "
          f"answering runs on {api}", flush=True)
    uvicorn.run(create_app(), host=host, port=port, log_level="warning")

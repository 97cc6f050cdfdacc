"""Firebreak's small web service for people who are not Prefect users (`firebreak web`): the
approval page behind each signed link, the acknowledgement page behind each page's link, and
the crisis page. The alert intake is a service of its own (web/intake.py)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

from firebreak.web import ack, approval, status


def create_app() -> FastAPI:
    app = FastAPI(title="Firebreak", docs_url=None, redoc_url=None)
    app.include_router(approval.router())  # /approve/{token}: signing a draft from a phone
    app.include_router(ack.router())  # /ack/{token}: acknowledging a page from a phone
    app.include_router(status.router())  # /status: the crisis page

    @app.get("/healthz", response_class=PlainTextResponse)
    def healthz() -> str:
        return "ok"

    return app

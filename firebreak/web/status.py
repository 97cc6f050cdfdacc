"""The crisis page (`/status`): the page the publish and resolve stages write
(tasks/crisis_page.py), served as it is, so it never says more or less than the channels."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse

from firebreak.flows.runtime import get_runtime
from firebreak.web.pages import READING_STYLE, page

def router() -> APIRouter:
    r = APIRouter()

    @r.get("/status", response_class=HTMLResponse)
    def crisis_page() -> Any:
        path = get_runtime().settings.data_dir / "crisis-page" / "index.html"
        if not path.exists():
            return page("No active crisis", "<h1>All clear</h1><p>There is no crisis page at the moment.</p>", READING_STYLE, 404)
        return FileResponse(path, media_type="text/html")

    return r

"""The crisis page (`/status`): the page the publish and resolve stages write
(tasks/crisis_page.py), served as it is, so it never says more or less than the channels; and
the team's list of incidents (`/incidents`)."""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse

from firebreak.flows.runtime import get_runtime
from firebreak.store.queries import recent_incidents
from firebreak.web.pages import READING_STYLE, page

def router() -> APIRouter:
    r = APIRouter()

    @r.get("/status", response_class=HTMLResponse)
    def crisis_page() -> Any:
        path = get_runtime().settings.data_dir / "crisis-page" / "index.html"
        if not path.exists():
            return page("No active crisis", "<h1>All clear</h1><p>There is no crisis page at the moment.</p>", READING_STYLE, 404)
        return FileResponse(path, media_type="text/html")

    @r.get("/incidents", response_class=HTMLResponse)
    def incidents() -> HTMLResponse:
        rt = get_runtime()
        rows = "".join(
            f"<tr><td>#{i.id}</td><td>{html.escape(i.brand)}</td><td>{html.escape(str(i.status))}</td>"
            f"<td>{html.escape(i.type or 'unclassified')}</td><td>{i.severity or '-'}</td>"
            f"<td>{html.escape(i.origin_platform or '-')}</td><td>{_when(i.detected_at)}</td>"
            f"<td>{html.escape(i.acknowledged_by or '-')}</td><td>{_when(i.resolved_at)}</td>"
            f"<td>{'drill' if i.drill else ''}</td></tr>" for i in recent_incidents(rt.db, limit=100))
        table = ("<table><thead><tr><th>#</th><th>brand</th><th>status</th><th>type</th><th>severity</th>"
                 "<th>started on</th><th>detected (UTC)</th><th>acknowledged by</th><th>resolved (UTC)</th><th></th>"
                 f"</tr></thead><tbody>{rows}</tbody></table>") if rows else "<p>No incident so far.</p>"
        return page("Incidents", f"<h1>Incidents</h1>{table}", READING_STYLE + _TABLE)

    return r


_TABLE = "table{border-collapse:collapse;font-size:.9rem}td,th{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:left}"


def _when(dt: datetime | None) -> str:
    return dt.strftime("%Y-%m-%d %H:%M") if dt else "-"

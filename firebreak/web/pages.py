"""The HTML shell of Firebreak's phone pages (approval links, acknowledgement links)."""

from __future__ import annotations

import html

from fastapi.responses import HTMLResponse


def page(title: str, body: str, style: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
                        f'content="width=device-width, initial-scale=1"><title>{html.escape(title)}</title>'
                        f"<style>{style}</style></head><body>{body}</body></html>", status_code=status)

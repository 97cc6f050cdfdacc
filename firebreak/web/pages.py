"""The HTML shell of Firebreak's phone pages (approval links, acknowledgement links)."""

from __future__ import annotations

import html

from fastapi.responses import HTMLResponse

# Pages people read on a phone: the draft to sign, the crisis page's placeholder.
READING_STYLE = """body{font-family:system-ui,sans-serif;max-width:40rem;margin:0 auto;padding:1rem;line-height:1.45}
h1{font-size:1.3rem}pre{white-space:pre-wrap;background:#f4f6f8;padding:.6rem;border-radius:4px}
.variant{border:1px solid #ddd;border-radius:6px;padding:.4rem .8rem;margin:.6rem 0}summary{cursor:pointer}label{display:block;margin-top:.6rem}
button{font-size:1.1rem;padding:.7rem 1.2rem;margin:.3rem .3rem .3rem 0;border-radius:6px;border:0}
.approve{background:#1e8449;color:#fff}.reject{background:#c0392b;color:#fff}textarea{width:100%;min-height:4rem}textarea.revision{min-height:8rem}
.error{color:#c0392b}.hash{font-family:monospace;word-break:break-all;font-size:.8rem}"""


def page(title: str, body: str, style: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
                        f'content="width=device-width, initial-scale=1"><title>{html.escape(title)}</title>'
                        f"<style>{style}</style></head><body>{body}</body></html>", status_code=status)

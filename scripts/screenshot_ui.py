"""Screenshots of the Prefect UI for the README: the deployments `firebreak up` serves, and a
paused sign-off run's approval form.

    .venv/bin/python scripts/screenshot_ui.py            # → docs/img/ui-deployments.png, docs/img/ui-approval.png

Starts `firebreak up` (scratch data dir, free loopback ports), then a small flow in its own
process that pauses exactly as the sign-off step does (`pause_flow_run(wait_for_input=
ApprovalInput.with_initial_data(description=…))`) with an example draft, and drives Debian's
Chromium with Playwright. The paused flow is named `sign-off-example`: it is an illustration,
not a real `respond` run. Everything is stopped at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from firebreak.sandbox.server import free_port
from firebreak.cli.up import stop_process_group

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
MAX_BYTES = 300_000

PAUSED_FLOW = '''
import sys
from prefect import flow
from prefect.flow_runs import pause_flow_run
from firebreak.flows.approval import ApprovalInput

DESCRIPTION = """### Sign-off needed: holding statement, incident #12 (severity 2, product safety)

**X, Facebook, Instagram, LinkedIn, Mastodon, Bluesky**

> We're aware of reports that some Fjell Trail 2 stoves overheat. Please stop using them while we
> investigate, and post every update on https://fjell.example/status. — Maria Jensen, Fjell Outdoor

Required: **comms** (1 of 1) and **legal** (0 of 1). sha256 `3f1c9a7e…` — you approve exactly this text.
"""

@flow(name="sign-off-example")
def sign_off_example() -> str:
    answer = pause_flow_run(wait_for_input=ApprovalInput.with_initial_data(
        description=DESCRIPTION, sha256="3f1c9a7e", decision="approve"), timeout=600, poll_interval=1)
    return answer.decision

sign_off_example()
'''


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    stop_process_group(proc, 30.0, sig)


def wait_for(what: str, check: object, deadline_s: float) -> object:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            got = check()  # type: ignore[operator]
        except httpx.HTTPError:
            got = None
        if got:
            return got
        time.sleep(0.5)
    raise TimeoutError(f"{what}: not within {deadline_s:.0f} s")


def shoot(ui: str, run_id: str, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1360, "height": 820}, device_scale_factor=1)
        page.goto(f"{ui}/deployments", wait_until="networkidle")
        page.get_by_text("monitor", exact=False).first.wait_for(timeout=30_000)
        page.wait_for_timeout(1500)
        page.screenshot(path=str(out / "ui-deployments.png"))
        page.goto(f"{ui}/runs/flow-run/{run_id}", wait_until="networkidle")
        page.get_by_role("button", name="Resume").first.click(timeout=30_000)
        heading = page.get_by_text("Sign-off needed", exact=False).first
        heading.wait_for(timeout=30_000)
        page.set_viewport_size({"width": 1360, "height": 1250})
        heading.scroll_into_view_if_needed()
        page.wait_for_timeout(1500)
        page.screenshot(path=str(out / "ui-approval.png"))
        browser.close()


def shrink(path: Path) -> None:
    """Keeps a PNG under MAX_BYTES by quantising its palette (Pillow) when it is larger."""
    if path.stat().st_size <= MAX_BYTES:
        return
    from PIL import Image

    img = Image.open(path).convert("RGB").quantize(colors=128)
    img.save(path, optimize=True)
    if path.stat().st_size > MAX_BYTES:
        raise RuntimeError(f"{path} is {path.stat().st_size} bytes, over {MAX_BYTES}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="fb-shots-"))
    port, intake = free_port(), free_port()
    ui, api = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FIREBREAK_", "PREFECT_"))}
    env.update(FIREBREAK_DATA_DIR=str(work / "data"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_HOME=str(work / "prefect-home"))
    up = subprocess.Popen([str(BIN / "firebreak"), "up", "--port", str(port), "--intake-port", str(intake)],
                          env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=open(work / "up.log", "wb"),
                          start_new_session=True)
    paused: subprocess.Popen[bytes] | None = None
    try:
        wait_for("firebreak up", lambda: up.poll() is None and httpx.get(f"http://127.0.0.1:{intake}/healthz",
                                                                        timeout=1).status_code == 200, 120)
        wait_for("deployments", lambda: len(httpx.post(f"{api}/deployments/filter", json={"limit": 20},
                                                       timeout=5).json()) > 0, 60)
        script = work / "paused.py"
        script.write_text(PAUSED_FLOW)
        paused = subprocess.Popen([sys.executable, str(script)], env={**env, "PREFECT_API_URL": api}, cwd=REPO,
                                  stdout=subprocess.DEVNULL, stderr=open(work / "paused.log", "wb"),
                                  start_new_session=True)

        def paused_run() -> str | None:
            runs = httpx.post(f"{api}/flow_runs/filter", timeout=5, json={
                "limit": 5, "sort": "START_TIME_DESC", "flow_runs": {"state": {"type": {"any_": ["PAUSED"]}}}}).json()
            return str(runs[0]["id"]) if runs else None

        run_id = str(wait_for("paused run", paused_run, 90))
        shoot(ui, run_id, args.out)
        for name in ("ui-deployments.png", "ui-approval.png"):
            shrink(args.out / name)
            print(f"{args.out / name}: {(args.out / name).stat().st_size} bytes")
    finally:
        if paused is not None:
            stop(paused)
        stop(up, signal.SIGINT)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

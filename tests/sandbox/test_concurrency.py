"""The sandbox counts requests in flight per platform and the peak since the last reset: the
scale-out benchmark reads it to check that per-platform concurrency limits hold."""

from __future__ import annotations

import httpx

from firebreak.sandbox.state import SandboxState

AUTH = {"Authorization": "Bearer test-token"}
X_BRAND = "1400000000000000001"


def test_peak_in_flight_per_platform_and_reset(sandbox_state: SandboxState) -> None:
    s = sandbox_state
    s.request_started("x")
    s.request_started("x")
    s.request_started("mastodon")
    s.request_finished("x")
    s.request_started("x")
    assert s.concurrency() == {"in_flight": {"x": 2, "mastodon": 1}, "peak": {"x": 2, "mastodon": 1}}
    s.request_finished("x")
    s.request_finished("mastodon")
    # a reset keeps only what is still in flight as the new peak
    assert s.concurrency(reset=True)["peak"] == {"x": 2, "mastodon": 1}
    assert s.concurrency()["peak"] == {"x": 1}
    s.request_finished("x")
    assert s.concurrency(reset=True)["in_flight"] == {"x": 0, "mastodon": 0}
    assert s.concurrency()["peak"] == {}


def test_the_control_panel_reports_platform_requests_only(sandbox) -> None:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=sandbox.url, headers=AUTH) as c:
        c.get("/_sandbox/state")
        assert c.get(f"/x/2/users/{X_BRAND}/mentions", params={"max_results": 10}).status_code == 200
        got = c.get("/_sandbox/concurrency").json()
        assert got == {"in_flight": {"x": 0}, "peak": {"x": 1}}
        c.get("/_sandbox/concurrency", params={"reset": "true"})
        assert c.get("/_sandbox/concurrency").json()["peak"] == {}

"""Per-platform global concurrency limits: the file, applying them to a server, and the slot
the monitor's platform drain takes (against a real Prefect test server)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from pathlib import Path

import pytest

from firebreak.errors import ConfigError
from firebreak.errors import PlatformBusy
from firebreak.flows.limits import LIMITS_FILE, apply_limits_now, load_limits, platform_slot


def test_the_shipped_limits_file_names_every_platform() -> None:
    from firebreak.domain import Platform

    limits = load_limits(LIMITS_FILE)
    assert set(limits) == {f"platform-{p.value}" for p in Platform}
    assert all(v >= 1 for v in limits.values())


@pytest.mark.parametrize("text, problem", [
    ("nope: 1\n", "expected a mapping under 'limits'"),
    ("limits:\n  platform-x: 0\n", "platform-x: expected a positive integer, got 0"),
    ("limits:\n  platform-x: many\n", "platform-x: expected a positive integer, got 'many'"),
    ("limits: [\n", "concurrency limits"),
])
def test_a_bad_limits_file_says_what_is_wrong(tmp_path: Path, text: str, problem: str) -> None:
    f = tmp_path / "limits.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match="concurrency limits .*") as info:
        load_limits(f)
    assert problem in str(info.value)


def test_disabled_slot_needs_no_server() -> None:
    ran = []
    with platform_slot("x", enabled=False, timeout_s=0.1):
        ran.append(1)
    assert ran == [1]


# -- against a real Prefect server -------------------------------------------------------------


@pytest.mark.integration
def test_apply_creates_then_updates_then_leaves_alone(prefect_server: str) -> None:
    name = f"platform-test-{uuid.uuid4().hex[:8]}"
    assert apply_limits_now({name: 3}) == {name: "created"}
    assert apply_limits_now({name: 3}) == {name: "unchanged"}
    assert apply_limits_now({name: 1}) == {name: "updated"}
    from prefect.client.orchestration import get_client

    async def read() -> int:
        async with get_client() as client:
            return (await client.read_global_concurrency_limit_by_name(name)).limit

    assert asyncio.run(read()) == 1


@pytest.mark.integration
def test_slots_bound_concurrency_across_holders(prefect_server: str) -> None:
    platform = f"t{uuid.uuid4().hex[:8]}"
    apply_limits_now({f"platform-{platform}": 2})
    inside = 0
    peak = 0
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work() -> None:
        nonlocal inside, peak
        try:
            with platform_slot(platform, enabled=True, timeout_s=60):
                with lock:
                    inside += 1
                    peak = max(peak, inside)
                time.sleep(0.4)
                with lock:
                    inside -= 1
        except BaseException as exc:  # collected and re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert not errors
    assert peak == 2  # five holders, never more than the limit at once, and the limit was used


@pytest.mark.integration
def test_a_missing_limit_is_a_config_error_and_a_full_one_times_out(prefect_server: str) -> None:
    with pytest.raises(ConfigError, match="firebreak limits apply"):
        with platform_slot(f"missing{uuid.uuid4().hex[:8]}", enabled=True, timeout_s=5):
            pass
    platform = f"t{uuid.uuid4().hex[:8]}"
    apply_limits_now({f"platform-{platform}": 1})
    with platform_slot(platform, enabled=True, timeout_s=30):
        with pytest.raises(PlatformBusy, match=f"platform-{platform}"):
            with platform_slot(platform, enabled=True, timeout_s=1):
                pass
    # an error from the body is not mistaken for an acquisition problem, and the slot comes back
    with pytest.raises(KeyError):
        with platform_slot(platform, enabled=True, timeout_s=30):
            raise KeyError("body")
    with platform_slot(platform, enabled=True, timeout_s=5):
        pass


@pytest.mark.integration
def test_a_long_drain_keeps_its_lease_renewed(prefect_server: str) -> None:
    from prefect.client.orchestration import get_client

    from firebreak.flows.limits import _acquire, _LeaseRenewer, _release

    platform = f"t{uuid.uuid4().hex[:8]}"
    apply_limits_now({f"platform-{platform}": 1})
    with get_client(sync_client=True) as client:
        lease = _acquire(client, f"platform-{platform}", platform, 10)
        renewer = _LeaseRenewer(lease, every_s=0.2)
        try:
            deadline = time.monotonic() + 10
            while renewer.renewals < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            renewer.stop()
            _release(client, f"platform-{platform}", lease)
    assert renewer.renewals >= 2
    with platform_slot(platform, enabled=True, timeout_s=5):  # released: the one slot is free
        pass


@pytest.mark.integration
def test_the_monitor_ingest_step_holds_its_platform_slot(prefect_server: str, sandbox_settings, playbook,
                                                          tmp_path: Path) -> None:
    """With FIREBREAK_PLATFORM_LIMITS on, a platform drain waits for a slot: while the test holds
    the only slot of platform-x, the ingest step cannot run and says which limit was full."""
    from firebreak.store.db import Database
    from firebreak.flows import steps
    from firebreak.flows.runtime import Runtime, set_runtime

    apply_limits_now(load_limits() | {"platform-x": 1})
    db = Database(f"sqlite:///{tmp_path / 'limits.db'}")
    db.migrate()
    settings = sandbox_settings.model_copy(update={"platform_limits": True, "platform_limit_timeout_s": 1.0})
    set_runtime(Runtime(settings=settings, playbook=playbook, db=db))
    try:
        with platform_slot("x", enabled=True, timeout_s=30):
            with pytest.raises(PlatformBusy, match="platform-x"):
                steps.ingest.fn("x")
        out = steps.ingest.fn("x")  # slot free again: the drain runs
        assert out["platform"] == "x" and out["received"] >= 0
    finally:
        set_runtime(None)
        db.dispose()
        apply_limits_now({"platform-x": load_limits()["platform-x"]})

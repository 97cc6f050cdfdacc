"""Per-platform Prefect global concurrency limits: how rate limits hold across many workers.

A platform limits an account, not a worker. Each brand's monitor drains six platforms; with
twenty workers running monitors at once, only the Prefect server sees them all. So each
platform has a global concurrency limit ``platform-<name>`` (values in
``deploy/concurrency-limits.yaml``) and the bulk reads take one slot of it for the whole
platform drain: per HTTP call would add two API round trips to every request.

The crisis path (freeze, publish, resume, engage) deliberately takes no slot: it makes a few
calls, and a freeze must never queue behind a hundred routine monitors. Its calls are still
paced per process by the connectors' rate-limit headers.

Off by default (`FIREBREAK_PLATFORM_LIMITS`): a drill or test on the ephemeral server has no
limits to take. When it is on, a missing limit is a configuration error, not a silent skip.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from firebreak.config.logging import get_logger
from firebreak.errors import ConfigError, PlatformBusy, TransientError

log = get_logger("firebreak.flows.limits")

LIMITS_FILE = Path(__file__).resolve().parents[1] / "deploy" / "concurrency-limits.yaml"


def limit_name(platform: str) -> str:
    return f"platform-{platform}"


def load_limits(path: Path | None = None) -> dict[str, int]:
    """``{"platform-x": 4, …}`` from the limits file; a bad file says what is wrong."""
    path = path or LIMITS_FILE
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"concurrency limits {path}: {exc}") from exc
    limits = doc.get("limits") if isinstance(doc, dict) else None
    if not isinstance(limits, dict) or not limits:
        raise ConfigError(f"concurrency limits {path}: expected a mapping under 'limits'")
    out: dict[str, int] = {}
    for name, value in limits.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"concurrency limits {path}: {name}: expected a positive integer, got {value!r}")
        out[str(name)] = value
    return out


async def apply_limits(client: Any, limits: Mapping[str, int]) -> dict[str, str]:
    """Create or update each limit on the Prefect server `client` talks to (idempotent).
    Returns what was done per limit: ``created``, ``updated`` or ``unchanged``."""
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
    from prefect.exceptions import ObjectNotFound

    done: dict[str, str] = {}
    for name, limit in limits.items():
        try:
            current = await client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            await client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=limit))
            done[name] = "created"
            continue
        if current.limit != limit or not current.active:
            await client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=limit, active=True))
            done[name] = "updated"
        else:
            done[name] = "unchanged"
    return done


# A slot is held with a lease: if the process dies, the server frees the slot when the lease
# runs out, instead of the limit losing a slot for good.
LEASE_S = 300.0


def apply_limits_now(limits: Mapping[str, int]) -> dict[str, str]:
    """`apply_limits` against the server in PREFECT_API_URL, from synchronous code."""
    import asyncio

    from prefect.client.orchestration import get_client

    async def _apply() -> dict[str, str]:
        async with get_client() as client:
            return await apply_limits(client, limits)

    return asyncio.run(_apply())


@contextmanager
def platform_slot(platform: str, *, enabled: bool, timeout_s: float) -> Iterator[None]:
    """Hold one slot of ``platform-<platform>`` while the body runs (when `enabled`).

    Prefect's own ``concurrency()`` starts a lease-renewal thread with its own API client for
    every slot and joins it (up to 2 s) on the way out; six parallel platform drains per run
    paid that every run (measured: 0.7 s → 3–4 s per drain). Here the lease is renewed only
    by a timer that fires if a drain outlives half the lease, so a drain pays two API calls."""
    if not enabled:
        yield
        return
    from prefect.client.orchestration import get_client

    name = limit_name(platform)
    with get_client(sync_client=True) as client:
        lease_id = _acquire(client, name, platform, timeout_s)
        renewer = _LeaseRenewer(lease_id)
        try:
            yield
        finally:
            renewer.stop()
            _release(client, name, lease_id)


def _acquire(client: Any, name: str, platform: str, timeout_s: float) -> str:
    import httpx

    from prefect.client.schemas.objects import ConcurrencyLeaseHolder
    from prefect.context import TaskRunContext

    ctx = TaskRunContext.get()
    holder = ConcurrencyLeaseHolder(type="task_run", id=ctx.task_run.id) if ctx is not None else None
    deadline = time.monotonic() + timeout_s
    waited = False
    while True:
        try:
            resp = client.increment_concurrency_slots_with_lease(
                names=[name], slots=1, mode="concurrency", lease_duration=LEASE_S, holder=holder)
        except httpx.HTTPStatusError as exc:
            status = exc.response.status_code
            if status >= 500:  # after the Prefect client's own retries
                raise TransientError(platform, f"Prefect server could not grant a slot of {name!r}: {exc}") from exc
            if status != 423:  # 423 Locked: every slot is taken
                raise ConfigError(f"Prefect refused a slot of {name!r}: {exc}") from exc
            wait = _retry_after(exc.response)
            if time.monotonic() + wait > deadline:
                raise PlatformBusy(platform, f"no slot of {name!r} free within {timeout_s:.0f} s") from exc
            if not waited:
                log.info("waiting for a slot", limit=name, retry_after_s=round(wait, 1))
                waited = True
            # Waiting for a slot is the task's business (Prefect's concurrency() does the
            # same); the wait is logged on the run and bounded by the timeout.
            time.sleep(wait)
            continue
        except httpx.HTTPError as exc:
            raise TransientError(platform, f"Prefect server unreachable for a slot of {name!r}: {exc}") from exc
        body = resp.json()
        lease_id = str(body["lease_id"])
        if not body.get("limits"):  # the server grants an empty lease for a limit that does not exist
            _release(client, name, lease_id)
            raise ConfigError(
                f"Prefect global concurrency limit {name!r} does not exist; create the limits with "
                "`firebreak limits apply`, or unset FIREBREAK_PLATFORM_LIMITS")
        return lease_id


def _retry_after(response: Any) -> float:
    try:
        return min(max(float(response.headers.get("Retry-After", 1.0)), 0.1), 30.0)
    except ValueError:
        return 1.0


def _release(client: Any, name: str, lease_id: str) -> None:
    import httpx

    try:
        client.release_concurrency_slots_with_lease(lease_id)
    except httpx.HTTPError as exc:
        # Not raised: the drain's own outcome matters more, and the lease frees the slot
        # within LEASE_S anyway. Logged, so an unreachable server is seen.
        log.warning("slot not released; its lease will expire", limit=name, lease_id=lease_id,
                    error=str(exc), expires_within_s=LEASE_S)


class _LeaseRenewer:
    """Renews a lease every half lease while the body runs; no thread or client until then."""

    def __init__(self, lease_id: str, every_s: float = LEASE_S / 2) -> None:
        self.lease_id = lease_id
        self.every_s = every_s
        self.renewals = 0
        self._stopped = threading.Event()
        self._timer: threading.Timer | None = None
        self._arm()

    def _arm(self) -> None:
        if not self._stopped.is_set():
            self._timer = threading.Timer(self.every_s, self._renew)
            self._timer.daemon = True
            self._timer.start()

    def _renew(self) -> None:
        import httpx

        from prefect.client.orchestration import get_client

        try:
            with get_client(sync_client=True) as client:
                client.renew_concurrency_lease(lease_id=self.lease_id, lease_duration=LEASE_S)
            self.renewals += 1
        except httpx.HTTPError as exc:
            if not self._stopped.is_set():
                log.warning("lease renewal failed; the slot may be freed early", lease_id=self.lease_id,
                            error=str(exc))
        self._arm()

    def stop(self) -> None:
        self._stopped.set()
        if self._timer is not None:
            self._timer.cancel()

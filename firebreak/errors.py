"""The one exception tree. Vendor and library errors are translated into these at the edge."""

from __future__ import annotations


class FirebreakError(Exception):
    """Base of every error Firebreak raises on purpose."""


class ConfigError(FirebreakError):
    """Settings or playbook are missing or invalid."""


class PlaybookError(ConfigError):
    """The playbook file does not validate. The message names the file, the field and the problem."""

    def __init__(self, path: str, problems: list[tuple[str, str]]):
        self.path = path
        self.problems = problems
        lines = [f"{loc}: {msg}" for loc, msg in problems]
        super().__init__(f"invalid playbook {path}: " + "; ".join(lines))


class StoreError(FirebreakError):
    """The database is unreachable, unmigrated or inconsistent."""


class AuditChainBroken(StoreError):
    def __init__(self, seq: int, reason: str):
        self.seq = seq
        self.reason = reason
        super().__init__(f"audit chain broken at event {seq}: {reason}")


class ConnectorError(FirebreakError):
    """A platform or notifier call failed. `platform` names which one."""

    retryable: bool = False

    def __init__(self, platform: str, message: str, *, status: int | None = None):
        self.platform = platform
        self.status = status
        super().__init__(f"{platform}: {message}")


class TransientError(ConnectorError):
    """5xx, 408, timeouts, resets: worth retrying with backoff."""

    retryable = True


class NotSent(TransientError):
    """The request never reached the server (connect failure): safe to resend, even a write."""


class UnreadableAnswer(TransientError, ValueError):
    """A 2xx answer whose body is not the JSON the API promises (a proxy's error page). Also a
    ValueError, as `json()` raises for a body that is not JSON, so code that expects that
    (an optional JSON reply) still can tell."""


class RateLimited(TransientError):
    """The platform said stop until `retry_after` seconds from now.

    Raised instead of sleeping inside the client so the task or flow reschedules visibly.
    """

    def __init__(self, platform: str, retry_after: float, message: str = "rate limited"):
        self.retry_after = retry_after
        super().__init__(platform, f"{message} (retry after {retry_after:.1f}s)", status=429)


class CircuitOpen(TransientError):
    """Too many consecutive failures: the platform is treated as down for a while."""

    def __init__(self, platform: str, message: str, *, retry_after: float = 30.0):
        self.retry_after = retry_after
        super().__init__(platform, message)


class PlatformBusy(ConnectorError):
    """No slot of the platform's global concurrency limit (shared by every worker) came free in
    time. Not retried by the task: it has already waited; the next scheduled run tries again."""


class AuthError(ConnectorError):
    """Credentials were refused, even after one refresh."""


class RejectedRequest(ConnectorError):
    """A 4xx other than 401/408/429: the request itself is wrong; never retried."""


class NotSupported(ConnectorError):
    """The platform has no such capability (e.g. scheduled posts on X)."""


class PolicyViolation(FirebreakError):
    """An action the rules forbid: publishing unapproved text, hiding criticism, posting while frozen."""


class ApprovalError(PolicyViolation):
    """An approval was refused: wrong role, author approving, stale hash, expired or reused code."""


class OrchestratorUnavailable(FirebreakError):
    """The Prefect server the runs are on cannot be reached: an answer was not handed over."""


class InvalidAlert(FirebreakError):
    """An incoming alert failed validation; it is kept in the dead-letter table."""

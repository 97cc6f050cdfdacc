"""The platform emulator: the six platforms' APIs on loopback, as strict as the real ones, with
faults on demand. A tool around the product (drills, tests, `firebreak up --sandbox`)."""

from __future__ import annotations

from firebreak.domain import Platform

# The credentials the drill and `firebreak up --sandbox` give every connector.
TOKEN = "sandbox-token"
APP_PASSWORD = "sandbox-app-password"  # Bluesky logs in with an app password


def connector_environment(sandbox_url: str) -> dict[str, str]:
    """FIREBREAK_* variables that point every connector at the sandbox, with credentials."""
    env = {"FIREBREAK_SANDBOX_URL": sandbox_url}
    for p in Platform:
        env[f"FIREBREAK_{p.value.upper()}__TOKEN"] = TOKEN
        env[f"FIREBREAK_{p.value.upper()}__PASSWORD"] = APP_PASSWORD
    return env

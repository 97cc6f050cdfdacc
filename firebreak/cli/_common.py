"""Helpers shared by the command modules. Settings and playbook load on first use, so that
`firebreak --help` imports nothing but the command modules themselves."""

from __future__ import annotations


def get_settings():  # type: ignore[no-untyped-def]
    from firebreak.config.settings import get_settings as _get_settings

    return _get_settings()


def get_playbook(path: str | None = None):  # type: ignore[no-untyped-def]
    from firebreak.config.playbook import load_playbook

    return load_playbook(path or get_settings().playbook)

"""Account lockdown: when the crisis is a compromised or misused account, stop every
publication at once except approved crisis statements, and tell the team what to rotate."""

from __future__ import annotations

from firebreak.config.playbook import Playbook
from firebreak.store.db import Database
from firebreak.store.models import Incident
from firebreak.store.queries import open_incidents


def locked_down(db: Database, playbook: Playbook, brand: str) -> Incident | None:
    """The open incident that has the brand locked down, if any."""
    with db.session() as s:
        for inc in s.scalars(open_incidents(brand)):
            if inc.type and playbook.crisis_type(inc.type).lockdown:
                return inc
    return None


def rotation_notice(playbook: Playbook) -> str:
    items = "\n".join(f"- {c}" for c in playbook.account_security.rotate_credentials) or "- (none listed in the playbook)"
    return ("ACCOUNT LOCKDOWN: nothing is published except approved crisis statements until the all-clear.\n"
            f"Rotate these credentials now:\n{items}")

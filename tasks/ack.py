"""Proof that the person acknowledging a page is the person who was paged.

A page carries two ways to acknowledge besides the CLI:

- a signed link (`/ack/{token}`) bound to one person and one incident, with its expiry
  inside the token. Unlike approval links it need not be single-use: acknowledging twice
  is harmless (the first acknowledgement counts), so nothing is stored for it;
- a short code for the Prefect UI form (`acknowledge_incident`), derived from the signing
  key, the incident, the person and the paging round. Deriving it (instead of storing an
  HMAC in `approval_codes`, whose rows belong to drafts) means nothing extra is stored and
  the code can be recomputed to check it.

Both reuse tasks/codes.py's signing key and MAC so there is one secret for every proof.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from firebreak.domain import utcnow
from firebreak.errors import PolicyViolation
from firebreak.tasks.codes import _mac, sign, unsign


# Long enough to cover every level and repeat of a slow ladder plus a late answer; short
# enough that a forwarded old page cannot acknowledge a later incident (it names one anyway).
DEFAULT_ACK_TTL = timedelta(hours=24)
CODE_LENGTH = 8


@dataclass(frozen=True)
class AckClaim:
    incident_id: int
    person: str
    expires_at: datetime


@dataclass(frozen=True)
class AckLinks:
    """What `run_escalation` needs to put a link and a code in each page."""

    key: bytes
    public_url: str
    ttl: timedelta = DEFAULT_ACK_TTL

    def link(self, incident_id: int, person: str) -> str:
        return f"{self.public_url.rstrip('/')}/ack/{issue_ack_link(self.key, incident_id, person, self.ttl)}"


def issue_ack_link(key: bytes, incident_id: int, person: str, ttl: timedelta = DEFAULT_ACK_TTL,
                   *, now: datetime | None = None) -> str:
    """A token `body.signature`; the body (incident, person, expiry) is readable but signed."""
    expires = (now or utcnow()) + ttl
    # Its own MAC label ("ack-link"): an approval link can never pass as an ack link.
    return sign(key, "ack-link", {"i": incident_id, "p": person, "e": int(expires.timestamp())})


def read_ack_link(key: bytes, token: str, *, now: datetime | None = None) -> AckClaim:
    """Check signature and expiry; raises PolicyViolation for anything else."""
    payload = unsign(key, "ack-link", token, what="acknowledgement link")
    try:
        claim = AckClaim(int(payload["i"]), str(payload["p"]),
                         datetime.fromtimestamp(int(payload["e"]), tz=utcnow().tzinfo))
    except (ValueError, KeyError, TypeError):
        raise PolicyViolation("acknowledgement link payload is not readable") from None
    if claim.expires_at < (now or utcnow()):
        raise PolicyViolation("acknowledgement link has expired")
    return claim


def ack_code(key: bytes, incident_id: int, person: str, rnd: int) -> str:
    """The code shown in round `rnd`'s page to `person` (same for every level of a round)."""
    return _mac(key, f"ack:{incident_id}:{person}:{rnd}")[:CODE_LENGTH]


def verify_ack_code(key: bytes, incident_id: int, person: str, code: str, rounds: int) -> int:
    """Returns the round whose code matches; raises PolicyViolation if none does.

    `rounds` is how many times the ladder may be walked (policy.repeat + 1): any round's code
    is good, since a person paged in round 0 may answer while round 1 runs."""
    given = code.strip().lower()
    for rnd in range(max(rounds, 1)):
        if hmac.compare_digest(given, ack_code(key, incident_id, person, rnd)):
            return rnd
    raise PolicyViolation(f"wrong acknowledgement code for {person} on incident {incident_id}")

"""Recording side effects that must happen exactly once (models.SideEffect): the record is
written `intended` before the external call, its attempts counted before each try, and it is
settled `done` or `failed` after. After a crash, a record with attempts > 0 that is not done
may or may not have reached the other side: the caller looks it up there before trying again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from firebreak.domain import utcnow
from firebreak.store.db import Database
from firebreak.store.models import EffectStatus, SideEffect

E = TypeVar("E", bound=SideEffect)

__all__ = ["EffectStatus", "find", "intend", "settle", "update"]


def find(s: Session, model: type[E], key: str) -> E | None:
    return s.scalars(select(model).where(model.idempotency_key == key)).first()


def intend(s: Session, model: type[E], key: str, **fields: Any) -> tuple[E, bool]:
    """The record for `key`; created `intended` with `fields` when there is none yet.
    Returns (record, created)."""
    row = find(s, model, key)
    if row is not None:
        return row, False
    row = model(idempotency_key=key, status=EffectStatus.INTENDED, attempts=0, created_at=utcnow(), **fields)
    s.add(row)
    s.flush()
    return row, True


def update(db: Database, model: type[E], key: str, **fields: Any) -> None:
    """Set fields of the record for `key` in a transaction of its own (progress, attempts)."""
    with db.session() as s:
        row = s.scalars(select(model).where(model.idempotency_key == key)).one()
        for k, v in fields.items():
            setattr(row, k, v)


def settle(db: Database, model: type[E], key: str, status: EffectStatus, *, error: str | None = None,
           at: datetime | None = None, **fields: Any) -> None:
    """Record the outcome of the call made for `key`: done (with what it returned) or failed
    (with why), at `at` (default now). A later success clears an earlier error."""
    if status is EffectStatus.INTENDED:
        raise ValueError("settle records an outcome: done or failed")
    update(db, model, key, status=status, error=error[:2000] if error else None, done_at=at or utcnow(), **fields)

"""Alembic environment: runs against the engine handed in by Database.migrate()."""

from alembic import context
from sqlalchemy import create_engine

from firebreak.store.db import normalise_url
from firebreak.store.models import Base

config = context.config
engine = config.attributes.get("engine")
if engine is None:  # plain `alembic` CLI use: take the URL from the config
    engine = create_engine(normalise_url(config.get_main_option("sqlalchemy.url")))

with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()

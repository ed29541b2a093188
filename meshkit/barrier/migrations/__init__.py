"""Alembic revisions of the barrier table (component ``barrier``)."""

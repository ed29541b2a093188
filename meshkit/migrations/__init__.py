"""The shared Alembic environment (``env.py``) every component's migrations run in (see meshkit.migrate)."""

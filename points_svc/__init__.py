"""points_svc: the points ledger - grants, TCC holds (freeze, deduct), refunds, and the audit.

* :mod:`points_svc.ledger` - the ledger: its vocabulary, tables, queries, input validation, and the
  domain where every movement is one points-log row written with its account change.
* :mod:`points_svc.api` - the ``meshpb.points.v1.Points`` servicer and its message conversions.
* :mod:`points_svc.config` - typed settings; :mod:`points_svc.runtime` - the wiring; ``__main__`` -
  the process entry point; ``migrations/`` - the Alembic versions of points_svc's tables.
"""

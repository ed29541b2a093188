"""``meshctl audit``: the invariants of DESIGN.md section 8 checked across the whole mesh.

* :mod:`~meshctl.audit.cli` - the command.
* :mod:`~meshctl.audit.clients` - where the services are, and typed gRPC clients for them.
* :mod:`~meshctl.audit.gather` - one snapshot: each service's ``Audit`` plus the coordinator's view.
* :mod:`~meshctl.audit.model` - the gathered reports and check results.
* :mod:`~meshctl.audit.checks` - the invariants, as pure functions over a report.
* :mod:`~meshctl.audit.render` - the output: a rich table or JSON.
"""

"""meshctl: the one command-line tool of saga-mesh; one subpackage per command group.

* :mod:`meshctl.stack` - ``up`` / ``down`` / ``status``: the local stack, its embedded servers
  (NATS, Redis, MariaDB as child processes), its layout and state file.
* :mod:`meshctl.demo` - ``demo``: the scripted scenario told against a running stack.
* :mod:`meshctl.audit` - ``audit``: gather every service's report and check the invariants.
* :mod:`meshctl.tx` - ``tx``: see and repair transactions through the coordinator's Admin API.
* :mod:`meshctl.config_cli` - ``config-sample``: the commented ``config.sample.yaml``.
"""

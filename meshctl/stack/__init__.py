"""The local stack: ``meshctl up``, ``down`` and ``status`` (DESIGN.md section 9). Local-only tooling.

* :mod:`~meshctl.stack.cli` - the commands.
* :mod:`~meshctl.stack.launcher` - start and stop a whole stack: servers first, then the services.
* :mod:`~meshctl.stack.embedded` - real NATS, Redis and MariaDB as child processes on 127.0.0.1.
* :mod:`~meshctl.stack.layout` - which services, on which ports, with which environment and files.
* :mod:`~meshctl.stack.procs` - start a service process, recognise it by pid, stop it.
* :mod:`~meshctl.stack.stackfile` - ``stack.json``: what a running stack consists of.
* :mod:`~meshctl.stack.endpoints` - where the CLI finds a service and the admin token.
* :mod:`~meshctl.stack.render` - the commands' output: rich tables or JSON.
"""

"""The admin web console: see and repair global transactions in a browser (issue 13).

It talks to the coordinator's Admin gRPC API only (and to each service's ``Audit`` for the audit page),
never to a database, so one console serves any number of coordinator replicas.

* :mod:`~console.config` - the ``console`` settings section and the console's settings class.
* :mod:`~console.admin_client` - the Admin gRPC client; failed calls become :class:`AdminError`.
* :mod:`~console.auth` - login with the admin token, the signed session, CSRF, the login rate limit.
* :mod:`~console.filters` - the transactions page's filters, parsed and checked (bad input -> 400).
* :mod:`~console.plot` - the overview's throughput and failure plot as inline SVG.
* :mod:`~console.present` - names, times and durations for the templates.
* :mod:`~console.views` - the pages, the actions and the live fragments.
* :mod:`~console.app` - the Starlette application factory.
* :mod:`~console.server` - the uvicorn server of given settings (``python -m console``, ``meshctl console``).
"""

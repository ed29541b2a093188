"""The console's HTTP endpoints.

* :mod:`~console.views.common` - the shared state, rendering and error pages.
* :mod:`~console.views.login` - log in and out.
* :mod:`~console.views.pages` - overview, transactions, detail, stuck, audit.
* :mod:`~console.views.live` - the fragments the live pages poll.
* :mod:`~console.views.actions` - the repair actions.
"""

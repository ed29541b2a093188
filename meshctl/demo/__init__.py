"""``meshctl demo`` (what ``make demo`` runs).

* :mod:`~meshctl.demo.cli` - the command: start the stack, tell the story, audit, stop.
* :mod:`~meshctl.demo.story` - the scripted story, told through the services' gRPC APIs.
* :mod:`~meshctl.demo.narrate` - how it is told: readable output, or one JSON document.
* :mod:`~meshctl.demo.wait` - polling asynchronous steps with a deadline.
"""

"""The external payment gateway's side of the contract.

* :mod:`~pay_svc.gateway.signing` - HMAC-SHA256 callback signatures over the canonical string.
* :mod:`~pay_svc.gateway.simulator` - the simulated gateway that signs and delivers callbacks.
"""

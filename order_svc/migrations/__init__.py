"""order_svc migrations (component ``order``); revisions live in ``versions``."""

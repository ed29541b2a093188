"""order_svc package."""

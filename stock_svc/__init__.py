"""stock_svc package."""

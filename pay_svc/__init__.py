"""pay_svc package."""

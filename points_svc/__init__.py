"""points_svc package."""

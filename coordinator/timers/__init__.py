"""timers package."""

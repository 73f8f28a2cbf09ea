"""letterlock.core."""

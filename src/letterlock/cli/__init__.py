"""letterlock.cli."""

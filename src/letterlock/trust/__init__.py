"""letterlock.trust."""

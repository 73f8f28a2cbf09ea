"""letterlock.transports."""

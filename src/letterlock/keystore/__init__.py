"""letterlock.keystore."""

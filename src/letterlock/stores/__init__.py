"""letterlock.stores."""

"""The ``letterlock`` command line (:mod:`letterlock.cli.main`); the only layer that prints."""

"""Integrations with frameworks that run their own consumers (Celery), on the public API.

Each lives in its own module, imported by name (``letterlock.integrations.celery``) so that
``import letterlock`` never imports a framework.
"""

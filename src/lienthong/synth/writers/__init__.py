"""Adapters that put generated sources on disk or into a database server."""

"""The ``lienthong`` command line: a thin composition root over the capability packages."""

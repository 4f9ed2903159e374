"""Synthetic citizens and agency source databases (``lienthong synth``)."""

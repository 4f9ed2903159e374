"""lienthong — secure interconnection (liên thông) and synchronisation (đồng bộ) of
government information systems and databases."""

__version__ = "0.1.0"

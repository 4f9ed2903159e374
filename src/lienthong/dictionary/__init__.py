"""The shared data dictionary (Từ điển dữ liệu dùng chung) and category lists.

- ``load_dictionary()`` → :class:`Dictionary` (entities, fields, sources; versioned YAML).
- ``validate_record(entity, record)`` → (normalised dict, reasons): the per-row check.
- ``lienthong.dictionary.categories``: provinces, communes, legacy codes and conversion,
  ethnic groups, religions, sexes, nationalities.
"""

from __future__ import annotations

from lienthong.dictionary.model import Dictionary, Entity, Field, Source, load_dictionary
from lienthong.dictionary.record import (
    RecordValidator,
    has_errors,
    record_validator,
    validate_record,
)

__all__ = [
    "Dictionary",
    "Entity",
    "Field",
    "RecordValidator",
    "Source",
    "has_errors",
    "load_dictionary",
    "record_validator",
    "validate_record",
]

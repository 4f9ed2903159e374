"""Tamper-evident audit log (nhật ký kiểm toán chống sửa đổi): RFC 6962 Merkle log of every
exchange, sync batch, administrative action and access to personal data, with signed
checkpoints, proofs, witnesses, archives and security-monitoring export.

Public API for other capabilities::

    from lienthong.audit import AuditLog, exchange_entry, sync_batch_entry, admin_entry,
        personal_data_access_entry, security_event_entry
"""

from lienthong.audit.entries import (
    Entry,
    admin_entry,
    exchange_entry,
    person_hash,
    personal_data_access_entry,
    security_event_entry,
    sync_batch_entry,
)
from lienthong.audit.log import AuditLog, InclusionProof
from lienthong.audit.merkle import ProofError, verify_consistency, verify_inclusion
from lienthong.audit.stamping import Timestamper

__all__ = [
    "AuditLog",
    "Entry",
    "InclusionProof",
    "ProofError",
    "Timestamper",
    "admin_entry",
    "exchange_entry",
    "person_hash",
    "personal_data_access_entry",
    "security_event_entry",
    "sync_batch_entry",
    "verify_consistency",
    "verify_inclusion",
]

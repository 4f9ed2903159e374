"""Synchronisation (đồng bộ) of agency databases into the National Consolidated Database.

Agency side: :class:`~lienthong.sync.agency.AgencySync` reads a source through a connector
(:mod:`lienthong.sync.connectors`), maps and validates rows (:mod:`lienthong.sync.mapping`),
stores signed, encrypted batches in a durable outbox (:mod:`lienthong.sync.outbox`) and sends
them through a :class:`~lienthong.sync.transport.Transport`. Hub side:
:class:`~lienthong.sync.hub.service.Hub` verifies each batch and applies it exactly once to the
consolidated database (:mod:`lienthong.sync.hub.store`). Operator guide: ``docs/sync.md``.
"""

from __future__ import annotations

from lienthong.sync.agency import AgencyKeys, AgencySync, RunReport
from lienthong.sync.cipher import RecipientKeys, RecipientPublic
from lienthong.sync.hub.service import Hub
from lienthong.sync.hub.store import HubStore
from lienthong.sync.pipeline import Pipeline, load_pipeline, pipeline_from_dict
from lienthong.sync.transport import DirectTransport, HttpTransport, Transport

__all__ = [
    "AgencyKeys",
    "AgencySync",
    "DirectTransport",
    "HttpTransport",
    "Hub",
    "HubStore",
    "Pipeline",
    "RecipientKeys",
    "RecipientPublic",
    "RunReport",
    "Transport",
    "load_pipeline",
    "pipeline_from_dict",
]

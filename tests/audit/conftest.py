"""Audit fixtures: one test body runs against SQLite and PostgreSQL (contract tests)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lienthong.audit import AuditLog
from lienthong.trust.keys import Algorithm, SoftwareSigner, generate_private_key


@pytest.fixture(scope="session")
def signer() -> SoftwareSigner:
    return SoftwareSigner(generate_private_key(Algorithm.ECDSA_P256))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def log_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Where to open a fresh log: a SQLite file, or a fresh schema in the test database."""
    if request.param == "sqlite":
        yield str(tmp_path / "node.auditlog")
        return
    dsn = request.getfixturevalue("pg_dsn")
    import psycopg

    schema = f"audit_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    yield f"{dsn}?options=-csearch_path%3D{schema}"


@pytest.fixture
def log(log_target: str, signer: SoftwareSigner) -> Iterator[AuditLog]:
    with AuditLog.open(log_target, signer=signer, origin="test.lienthong.gov.vn/audit") as lg:
        yield lg

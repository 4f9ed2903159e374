"""The National Consolidated Database (CSDL tổng hợp quốc gia): apply batches exactly once.

Per entity two tables: ``c_<entity>`` (current version, key ``(source, source_key)``, lineage
columns) and ``h_<entity>`` (every previous version with ``valid_from``/``valid_to`` and the
operation that ended it). ``sync_batches`` records every applied batch, ``sync_sources`` the
last sequence number per source, ``sync_quarantine`` the rejected rows with every reason.

Exactly-once: :meth:`HubStore.apply` writes the rows *and* the ``(source, seq)`` record in one
transaction, after locking the source's sequence row; a batch whose sequence is already
recorded is acknowledged again without touching any row.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import orjson

from lienthong.errors import BackendError, IntegrityError
from lienthong.sync.envelope import Batch
from lienthong.sync.hub.dialect import (
    HubDialect,
    binary_block,
    binary_rows,
    connect_hub,
    copy_binary_current,
    copy_escape,
    copy_field,
    copy_upsert_block,
    entity_ident,
    same_json,
)

log = logging.getLogger("lienthong.sync.hub")

SCHEMA_VERSION = 1
# spare connections for batches COPYed ahead of their turn (PostgreSQL)
MAX_SPARES = 2
# open quarantine keys kept in memory per (source, entity) up to this many (PostgreSQL)
OPEN_VIEW_LIMIT = 250_000


@dataclass(frozen=True)
class Applied:
    """What the hub did with one batch (the fields of its signed acknowledgement)."""

    source: str
    seq: int
    batch: str
    status: str  # "applied" | "duplicate"
    applied: int
    quarantined: int
    read: int

    def ack_fields(self) -> dict[str, Any]:
        return {
            "source": self.source, "seq": self.seq, "batch": self.batch, "status": self.status,
            "applied": self.applied, "quarantined": self.quarantined, "read": self.read,
        }  # fmt: skip


@dataclass(frozen=True)
class Prepared:
    """The work of a batch that needs no database: its rows (the last change per key) and
    their binary COPY rows, done before the batch's turn to apply (off the writer's path)."""

    upserts: list[tuple[str, str, bytes]]
    copy_rows: list[bytes] | None


@dataclass(frozen=True)
class Speculation:
    """A batch whose rows were COPYed into the current table ahead of its turn, on a spare
    connection whose transaction stays open until :meth:`HubStore.apply` commits or discards
    it (see :meth:`HubStore.speculate`)."""

    conn: Any
    entity: str
    stored: int  # the sequence number the batch was COPYed with
    now: str  # the receive time written into its rows


@dataclass
class _OpenKeys:
    """The keys of a (source, entity)'s open quarantine entries, as of the source's stored
    sequence ``seq``. Every write to those entries happens in :meth:`HubStore.apply` under
    the lock on the source's ``sync_sources`` row and moves its sequence, so the view is
    current exactly while the source's last sequence is still ``seq``; it only ever
    pre-selects keys (the entries themselves are read from the database)."""

    seq: int
    keys: Counter[str]
    # this batch's changes, folded in after its commit
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


class HubStore:
    """The consolidated database behind one connection (one writer at a time).

    ``connect`` (PostgreSQL) opens further connections to the same database: with it, the
    rows of a snapshot batch can be COPYed while the batch before it is still being applied
    (:meth:`speculate`); batches still commit one at a time, in order.
    """

    def __init__(
        self, conn: Any, dialect: HubDialect, connect: Callable[[], Any] | None = None
    ) -> None:
        self.conn = conn
        self.d = dialect
        if dialect.name == "sqlite":  # the merge's JSON comparison (HubDialect.changed_sql)
            conn.create_function("lt_same_json", 2, same_json, deterministic=True)
        self._connect = connect if dialect.copy_upserts is not None else None
        self._spares: list[Any] = []  # idle spare connections
        self._spares_open = 0
        self._staged: dict[int, set[str]] = {}  # id of a spare → entities with a stage table
        # id of a spare → the spare, while its speculation waits for the batch's turn (idle
        # in transaction, holding its keys' locks; no thread uses it): close() ends them
        self._parked: dict[int, Any] = {}
        self._parked_of: dict[int, tuple[str, str]] = {}  # id of a parked spare → (source, epoch)
        # source → (count, epoch) of the re-basing batches (batch 1 of an agency state) begun:
        # a speculation of another state of the source that began before one is not parked
        self._rebases: dict[str, tuple[int, str]] = {}
        self._closed = False
        self._spare_lock = threading.Lock()
        self.speculated = 0  # batches whose speculative COPY was committed (for tests, bench)
        if self._connect is not None:
            _bounded_lock_waits(conn)
        self._entities: set[str] = set()
        self._copy_skip: dict[str, int] = {}  # entity → batches to merge before trying COPY
        self._open: dict[tuple[str, str], _OpenKeys] = {}  # PostgreSQL only
        self._view: _OpenKeys | None = None  # the view of the batch being applied
        self._ddl(
            f"""CREATE TABLE IF NOT EXISTS sync_sources (
                source TEXT PRIMARY KEY, last_seq BIGINT NOT NULL, updated_at {dialect.ts_type})""",
            f"""CREATE TABLE IF NOT EXISTS sync_batches (
                source TEXT NOT NULL, seq BIGINT NOT NULL, batch TEXT NOT NULL, tbl TEXT NOT NULL,
                entity TEXT NOT NULL, position TEXT NOT NULL, read BIGINT NOT NULL,
                applied BIGINT NOT NULL, quarantined BIGINT NOT NULL,
                received_at {dialect.ts_type} NOT NULL, PRIMARY KEY (source, seq))""",
            f"""CREATE TABLE IF NOT EXISTS sync_quarantine (
                id {dialect.id_type}, source TEXT NOT NULL, seq BIGINT NOT NULL,
                tbl TEXT NOT NULL, entity TEXT NOT NULL, source_key TEXT NOT NULL,
                position TEXT NOT NULL, raw {dialect.json_type} NOT NULL, reasons TEXT NOT NULL,
                received_at {dialect.ts_type} NOT NULL, resolved_seq BIGINT)""",
            # open entries by key: superseded by a newer version, deduplicated on arrival
            """CREATE INDEX IF NOT EXISTS sync_quarantine_open ON sync_quarantine
                (source, entity, source_key) WHERE resolved_seq IS NULL""",
            # entries closed without a re-submission (a newer version / a deletion applied)
            """CREATE TABLE IF NOT EXISTS sync_quarantine_closed (
                id BIGINT PRIMARY KEY, seq BIGINT NOT NULL, reason TEXT NOT NULL)""",
            "CREATE TABLE IF NOT EXISTS sync_meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)",
            # one row per agency state (epoch) of a source: its batch n is sequence base + n
            f"""CREATE TABLE IF NOT EXISTS sync_epochs (
                source TEXT NOT NULL, epoch TEXT NOT NULL, base BIGINT NOT NULL,
                received_at {dialect.ts_type} NOT NULL, PRIMARY KEY (source, epoch))""",
            # the hub's clock for the batch being applied, read by the history triggers
            f"""CREATE TABLE IF NOT EXISTS sync_clock (id INTEGER PRIMARY KEY CHECK (id = 1),
                now {dialect.ts_type})""",
            "INSERT INTO sync_clock VALUES (1, NULL) ON CONFLICT (id) DO NOTHING",
        )
        self._ddl(
            self.d.sql(
                "INSERT INTO sync_meta VALUES ('schema_version', ?) ON CONFLICT (k) DO NOTHING"
            ),
            params=(str(SCHEMA_VERSION),),
        )

    def close(self) -> None:
        """Close the database connections: the main one, the idle spares and the spares of
        parked speculations (their transactions end, and with them their row locks). A spare
        in use by a speculation being COPYed or applied is closed when it is given back."""
        with self._spare_lock:
            self._closed = True
            spares, self._spares = self._spares, []
            parked = list(self._parked.values())
            self._parked.clear()
            self._parked_of.clear()
            self._spares_open -= len(spares) + len(parked)
        for conn in [self.conn, *spares, *parked]:
            with contextlib.suppress(Exception):
                conn.close()

    def _ddl(self, *statements: str, params: tuple[Any, ...] = ()) -> None:
        try:
            if self.d.begin:
                self.conn.execute(self.d.begin)
            for stmt in statements:
                self.conn.execute(stmt, params) if params else self.conn.execute(stmt)
            self.conn.commit()
        except Exception as exc:
            self._rollback()
            raise BackendError(f"consolidated database: {exc}") from exc

    def _rollback(self) -> None:
        with contextlib.suppress(Exception):  # the connection itself may be gone
            self.conn.rollback()

    def ensure_entity(self, entity: str) -> None:
        e = entity_ident(entity)
        if e in self._entities:
            return
        key, json = self.d.key_type, self.d.json_type
        cols = f"""source {key} NOT NULL, source_key {key} NOT NULL, data {json} NOT NULL,
            position TEXT NOT NULL, batch_seq BIGINT NOT NULL,
            received_at {self.d.ts_type} NOT NULL, valid_from {self.d.ts_type} NOT NULL"""
        self._ddl(
            f"CREATE TABLE IF NOT EXISTS c_{e} ({cols}, PRIMARY KEY (source, source_key))",
            f"""CREATE TABLE IF NOT EXISTS h_{e} ({cols}, valid_to {self.d.ts_type} NOT NULL,
                ended_by TEXT NOT NULL)""",
            f"CREATE INDEX IF NOT EXISTS h_{e}_key ON h_{e} (source, source_key)",
            self._stage_ddl(e),
            *(ddl.replace("{e}", e) for ddl in self.d.history_ddl),
        )
        self._entities.add(e)

    def _stage_ddl(self, e: str) -> str:
        """The staging table of an entity (temporary: one per connection)."""
        columns = f"source_key TEXT, position TEXT, data {self.d.json_type}"
        return f"CREATE TEMP TABLE IF NOT EXISTS stage_{e} ({columns}){self.d.temp_suffix}"

    def prepare(self, batch: Batch) -> Prepared | None:
        """Precompute what :meth:`apply` would compute first (any thread; no database)."""
        if not batch.upserts:
            return None
        ups = _last_per_key(batch.upserts)
        return Prepared(ups, binary_rows(ups, batch.source) if self.d.copy_upserts else None)

    @property
    def can_speculate(self) -> bool:
        return self._connect is not None

    def speculate(self, batch: Batch, prepared: Prepared | None, now: str) -> Speculation | None:
        """COPY the rows of a snapshot batch into the current table on a spare connection,
        without committing, while the batch before it is still being applied; :meth:`apply`
        then finishes that transaction (or discards it and applies the batch as usual).

        The caller must make sure that no batch applied before this one touches its keys (the
        hub speculates only while the batch's predecessor is being applied, on disjoint keys):
        the COPY holds its keys' locks until the batch's turn. Only batches that would take
        the COPY path anyway qualify — upserts only, no deletes, no re-submissions, an entity
        already created, not the first batch of a new agency state. Returns None when the
        batch does not qualify or a key already exists (the COPY is rolled back).
        """
        copy = self.d.copy_upserts
        if copy is None or self._connect is None or prepared is None or not prepared.copy_rows:
            return None
        if batch.deletes or batch.resolves or batch.header.get("rebase") is True:
            return None
        if "keyless" in batch.header:  # closes entries: applied the usual way
            return None
        e = entity_ident(str(batch.header["entity"]))
        if e not in self._entities or self._copy_skip.get(e, 0):
            return None
        conn = self._take_spare()
        if conn is None:
            return None
        epoch = str(batch.header.get("epoch") or "")
        with self._spare_lock:
            rebases = self._rebases.get(batch.source, (0, ""))[0]
        try:
            epochs = self._epochs(batch.source, conn)
            if epochs and (not epoch or epochs.get(epoch) != max(epochs.values())):
                # a superseded agency state (or a legacy batch once states exist): refused at
                # its turn; a COPY would only hold keys the newer state's batches write
                conn.rollback()
                self._give_back(conn)
                return None
            staged = self._staged.setdefault(id(conn), set())
            if e not in staged:  # the merge of a later step may need it (quarantine, deletes)
                conn.execute(self._stage_ddl(e))
                conn.commit()
                staged.add(e)
            block = None
            if not epoch or epoch in epochs:
                stored = epochs.get(epoch, 0) + batch.seq
                block = binary_block(prepared.copy_rows, stored, now)
            if block is None or copy(conn, f"c_{e}", block, True) is None:
                if block is not None:  # a key exists: merge this entity for a few batches
                    self._copy_skip[e] = 8
                conn.rollback()
                self._give_back(conn)
                return None
        except Exception:  # the connection is in doubt: close it, apply as usual
            self._give_back(conn, broken=True)
            return None
        with self._spare_lock:
            count, rebasing = self._rebases.get(batch.source, (0, ""))
            # not parked while the store closed, or a newer agency state of the source began
            # re-basing meanwhile (its batch must not wait for these locks: ended below)
            if not self._closed and (count == rebases or rebasing == epoch):
                self._parked[id(conn)] = conn
                self._parked_of[id(conn)] = (batch.source, epoch)
                return Speculation(conn, e, stored, now)
        self._give_back(conn, broken=True)
        return None

    def _end_other_states(self, source: str, epoch: str) -> None:
        """Batch 1 of an agency state (``rebase``) is about to be applied: end the parked
        speculations of the source's other states at once (their transactions end, and
        with them their row locks). Such a batch belongs to a state that this one
        supersedes: at its turn it is applied the usual way — refused as superseded once
        this batch is applied (409), or applied if this one failed. Before, the re-basing
        batch waited for their locks while holding the writer they needed to reach their
        turn, until the lock timeout (30 s; 503, re-sent)."""
        with self._spare_lock:
            count, _ = self._rebases.get(source, (0, ""))
            self._rebases[source] = (count + 1, epoch)
            ended = [i for i, (src, ep) in self._parked_of.items() if src == source and ep != epoch]
            conns = [self._parked.pop(i) for i in ended]
            for i in ended:
                del self._parked_of[i]
                self._staged.pop(i, None)
            self._spares_open -= len(conns)
        for conn in conns:
            with contextlib.suppress(Exception):  # closing rolls its transaction back
                conn.close()

    def _unpark(self, spec: Speculation) -> bool:
        """Take a parked speculation back for its batch's turn (or to discard it); False when
        :meth:`close` already ended it."""
        with self._spare_lock:
            self._parked_of.pop(id(spec.conn), None)
            return self._parked.pop(id(spec.conn), None) is not None

    def _take_spare(self) -> Any:
        with self._spare_lock:
            if self._closed:
                return None
            while self._spares:
                spare = self._spares.pop()
                if not _dead(spare):
                    return spare
                self._spares_open -= 1  # ended by the database while idle: open another
                self._staged.pop(id(spare), None)
            if self._connect is None or self._spares_open >= MAX_SPARES:
                return None
            self._spares_open += 1
        conn = None
        try:
            conn = self._connect()
            _bounded_lock_waits(conn)
            return conn
        except Exception:
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
            with self._spare_lock:
                self._spares_open -= 1
            return None

    def _give_back(self, conn: Any, broken: bool = False) -> None:
        with self._spare_lock:
            broken = broken or self._closed  # a closed store keeps no spare
            if broken:
                self._spares_open -= 1
                self._staged.pop(id(conn), None)
            else:
                self._spares.append(conn)
        if broken:
            with contextlib.suppress(Exception):
                conn.rollback()
            with contextlib.suppress(Exception):
                conn.close()

    def discard(self, spec: Speculation) -> None:
        """Roll a speculation back (a batch that will not be applied)."""
        if self._unpark(spec):
            self._give_back(spec.conn, broken=not _rolled_back(spec.conn))

    def apply(
        self, batch: Batch, now: str, prepared: Prepared | None = None,
        spec: Speculation | None = None,
    ) -> Applied:  # fmt: skip
        """Apply ``batch`` exactly once (see module docstring); return what happened.

        With ``spec`` (from :meth:`speculate`), its transaction is finished instead when it
        still holds: the batch's sequence number is the one it was COPYed with and no open
        quarantine entry of the source has one of its keys (closing such an entry compares
        with the current rows, which must not hold the batch yet). Otherwise it is rolled back
        and the batch is applied as usual.
        """
        if self._closed:
            if spec is not None:
                self.discard(spec)
            raise BackendError("consolidated database: the hub's store is closed")
        self._revive()
        if spec is not None and not self._unpark(spec):
            spec = None  # ended by close() or a newer agency state meanwhile
        if spec is None and batch.header.get("rebase") is True and self._connect is not None:
            self._end_other_states(batch.source, str(batch.header.get("epoch") or ""))
        if spec is not None:
            main, self.conn = self.conn, spec.conn
            try:
                done = self._apply_speculated(batch, spec, prepared)
            finally:
                self.conn = main
                self._give_back(spec.conn, broken=not _rolled_back(spec.conn))
            if done is not None:
                self.speculated += 1
                return done
        try:
            return self._apply(batch, now, prepared)
        except BackendError:
            if self._closed or self._connect is None or not _dead(self.conn):
                raise
        # the connection died under this batch: once more on a new one (if the commit had
        # reached the database, the batch's sequence number says so and it is a duplicate)
        self._revive()
        return self._apply(batch, now, prepared)

    def _apply_speculated(
        self, batch: Batch, spec: Speculation, prepared: Prepared | None
    ) -> Applied | None:
        """Finish a speculation's transaction (on ``self.conn``), or roll it back → None."""
        import psycopg  # speculation is PostgreSQL only (the dialect imports it lazily too)

        try:
            view = self._open_view(batch.source, spec.entity, spec.stored - 1)
        except psycopg.Error:  # the spare died while parked (an idle-in-transaction timeout,
            view = None  # an administrator): nothing of the batch is stored, apply as usual
            self._open.pop((batch.source, spec.entity), None)
        try:
            keys = map(itemgetter(0), prepared.upserts if prepared else batch.upserts)
            if view is not None and (not view.keys or view.keys.keys().isdisjoint(keys)):
                return self._apply(batch, spec.now, prepared, copied=spec.stored)
        except _Stale:  # also a failure of its connection before the commit (see _apply)
            pass
        self._view = None
        self._rollback()
        return None

    def _apply(
        self, batch: Batch, now: str, prepared: Prepared | None = None, copied: int = 0
    ) -> Applied:
        h = batch.header
        entity = entity_ident(str(h["entity"]))
        self.ensure_entity(entity)
        committing = False
        try:
            if self.d.begin:
                self.conn.execute(self.d.begin)
            done, stored = self._check_sequence(batch, now)
            if copied and (done is not None or stored != copied):
                raise _Stale  # not the batch's sequence number (or already applied)
            if done is None:
                self._apply_rows(batch, entity, now, stored, prepared, copied=bool(copied))
                done = self._record(batch, now, stored)
            committing = True
            self.conn.commit()
        except _Stale:
            raise
        except IntegrityError:
            self._rollback()
            self._forget_view(batch.source, entity)
            raise
        except Exception as exc:
            self._rollback()
            self._forget_view(batch.source, entity)
            if copied and not committing:  # a speculation's connection failed before its
                raise _Stale from exc  # commit: nothing of the batch is stored, apply as usual
            raise BackendError(f"consolidated database: {exc}") from exc
        view, self._view = self._view, None
        if view is not None and done.status == "applied":
            view.keys.update(view.added)
            if view.removed:
                view.keys.subtract(view.removed)
                view.keys += Counter()  # drop the keys whose count fell to zero
            view.seq, view.added, view.removed = stored, [], []
        return done

    def _revive(self) -> None:
        """Open a new main connection when the database ended the old one (a restart, a
        failover, an administrator's ``pg_terminate_backend``). The batch that met the dead
        connection was answered 503 and is re-sent; the next one gets a live connection —
        the hub used to answer 503 until it was restarted. The per-connection state goes
        with the old one: the entities' TEMP stage tables, and the open-quarantine views
        (read again)."""
        if self._closed or self._connect is None or not _dead(self.conn):
            return  # (a closed store stays closed: close() ended its connection on purpose)
        with contextlib.suppress(Exception):  # it is gone already
            self.conn.close()
        try:
            conn = self._connect()  # BackendError while the database is still away
            _bounded_lock_waits(conn)
        except BackendError:
            raise
        except Exception as exc:
            raise BackendError(f"consolidated database: {exc}") from exc
        if self._closed:  # closed meanwhile (shutdown): keep nothing open
            conn.close()
            raise BackendError("consolidated database: the hub's store is closed")
        log.warning("consolidated database: the connection was ended; reconnected")
        self.conn = conn
        self._entities.clear()
        self._open.clear()
        self._view = None

    def _forget_view(self, source: str, entity: str) -> None:
        self._view = None
        self._open.pop((source, entity), None)

    def last_seq(self, source: str, epoch: str = "") -> int:
        """The last batch number applied for ``source`` in ``epoch`` (0 if none)."""
        self._revive()
        try:
            row = self.conn.execute(
                self.d.sql("SELECT last_seq FROM sync_sources WHERE source = ?"), (source,)
            ).fetchone()
            epochs = self._epochs(source) if epoch else {}
        finally:
            self._rollback()  # end the read transaction
        if epoch and epoch not in epochs:
            return 0  # a new agency state: its batch 1 comes first
        return max(0, int(row[0]) - epochs.get(epoch, 0)) if row else 0

    def _epochs(self, source: str, conn: Any = None) -> dict[str, int]:
        rows = (
            (conn or self.conn)
            .execute(self.d.sql("SELECT epoch, base FROM sync_epochs WHERE source = ?"), (source,))
            .fetchall()
        )
        return {str(e): int(b) for e, b in rows}

    def _check_sequence(self, batch: Batch, now: str) -> tuple[Applied | None, int]:
        """(None, stored sequence) to apply the batch, or (its earlier ack, …) if applied.

        A batch's stored sequence is its epoch's base + its number. An agency state tags its
        batches with its epoch; batch 1 of a new epoch (``rebase``) starts it at the source's
        last sequence — a lost agency state re-snapshots instead of conflicting forever. Only
        the newest epoch (or the legacy, untagged one while no epoch exists) may apply.
        """
        q = self.d.sql
        row = self.conn.execute(
            q(f"SELECT last_seq FROM sync_sources WHERE source = ?{self.d.lock}"), (batch.source,)
        ).fetchone()
        last = int(row[0]) if row else 0
        epoch = str(batch.header.get("epoch") or "")
        epochs = self._epochs(batch.source)
        if epoch and epoch not in epochs:
            if batch.seq == 1 and batch.header.get("rebase") is True:
                self.conn.execute(
                    q(f"INSERT INTO sync_epochs VALUES (?, ?, ?, CAST(? AS {self.d.ts_type}))"),
                    (batch.source, epoch, last, now),
                )
                return None, last + 1
            raise IntegrityError(
                f"batch {batch.seq} from {batch.source}: unknown agency state epoch {epoch}",
                code="sequence_conflict",
            )
        base = epochs.get(epoch, 0)
        newest = not epochs or (bool(epoch) and base == max(epochs.values()))
        stored = base + batch.seq
        if stored == last + 1 and newest:
            return None, stored
        if stored > last:
            if not newest:
                raise _superseded(batch)
            raise IntegrityError(
                f"batch {batch.seq} from {batch.source} out of order: expected {last + 1 - base}",
                code="sequence_gap",
            )
        prior = self.conn.execute(
            q(
                "SELECT batch, applied, quarantined, read FROM sync_batches"
                " WHERE source = ? AND seq = ?"
            ),
            (batch.source, stored),
        ).fetchone()
        if prior is None or prior[0] != batch.header_sha256:
            if not newest:
                raise _superseded(batch)
            raise IntegrityError(
                f"batch {batch.seq} from {batch.source} reuses its sequence number for other data",
                code="sequence_conflict",
            )
        done = Applied(batch.source, batch.seq, prior[0], "duplicate", *map(int, prior[1:]))
        return done, stored

    def _apply_rows(
        self, batch: Batch, e: str, now: str, seq: int, prepared: Prepared | None = None,
        copied: bool = False,
    ) -> None:  # fmt: skip
        q, d = self.d.sql, self.d
        src = batch.source
        c = self.conn
        c.execute(q(f"UPDATE sync_clock SET now = CAST(? AS {d.ts_type}) WHERE id = 1"), (now,))
        if prepared is not None:
            ups = prepared.upserts
        else:
            ups = _last_per_key(batch.upserts) if batch.upserts else []
        tbl = str(batch.header["table"])
        resolving = set(batch.resolves)
        self._view = self._open_view(src, e, seq - 1)
        has_open = bool(self._view.keys) if self._view is not None else self._has_open(src, e)
        if has_open and (ups or batch.deletes):  # before the merge: it compares versions
            self._supersede(src, e, seq, ups, batch.deletes, set(batch.resolves))
        copy_rows = prepared.copy_rows if prepared is not None else None
        if ups and not copied and not self._copy_new(e, src, seq, now, ups, copy_rows):
            c.execute(f"DELETE FROM stage_{e}")
            d.bulk_load(c, f"stage_{e}", ("source_key", "position", "data"), ups)
            # a changed row fires the history trigger; an identical one is left alone
            c.execute(
                q(f"""INSERT INTO c_{e} SELECT ?, source_key, data, position, ?,
                    CAST(? AS {d.ts_type}), CAST(? AS {d.ts_type})
                    FROM stage_{e} WHERE true ON CONFLICT (source, source_key) DO UPDATE SET
                    data = excluded.data, position = excluded.position,
                    batch_seq = excluded.batch_seq, received_at = excluded.received_at,
                    valid_from = excluded.valid_from
                    WHERE {d.changed_sql.format(old=f"c_{e}.data", new="excluded.data")}"""),
                (src, seq, now, now),
            )
        if batch.deletes:
            c.execute(f"DELETE FROM stage_{e}")
            dels = list(dict(batch.deletes).items())
            d.bulk_load(c, f"stage_{e}", ("source_key", "position"), dels)
            c.execute(
                q(f"DELETE FROM c_{e} WHERE source = ? AND source_key IN "
                  f"(SELECT source_key FROM stage_{e})"),
                (src,),
            )  # fmt: skip
        quarantine, stale = self._new_entries(src, e, tbl, batch.quarantine, has_open)
        keyless = batch.header.get("keyless")
        if has_open and isinstance(keyless, list):
            stale += self._replaced_keyless(
                src, e, tbl, [str(c) for c in keyless], batch.quarantine
            )
        if stale:  # the key's row changed again while invalid: only its newest entry stays
            self._close(seq, [(i, k, "superseded") for i, k in stale if i not in resolving])
        if quarantine and self._view is not None:
            self._view.added += [k for k, *_ in quarantine]
        if quarantine:
            cols = ("source", "seq", "tbl", "entity", "source_key", "position", "raw", "reasons",
                    "received_at")  # fmt: skip
            d.bulk_load(c, "sync_quarantine", cols, [
                (src, seq, tbl, e, k, p, raw.decode(), orjson.dumps(rs).decode(), now)
                for k, p, raw, rs in quarantine
            ])  # fmt: skip
        if batch.resolves:
            self._forget_view(src, e)  # rare (re-submissions): read the view afresh next time
            c.cursor().executemany(
                q("UPDATE sync_quarantine SET resolved_seq = ? WHERE id = ? AND source = ?"),
                [(seq, i, src) for i in batch.resolves],
            )
        c.execute(f"DELETE FROM stage_{e}")

    def _open_view(self, src: str, e: str, last: int) -> _OpenKeys | None:
        """The open-key view of (src, e) valid at the source's last sequence ``last``, read
        from the database when missing or outdated; None on SQLite or past the limit."""
        if self.d.name != "postgres":
            return None
        view = self._open.get((src, e))
        if view is None or view.seq != last:
            keys = Counter(str(r[0]) for r in self.conn.execute(
                "SELECT source_key FROM sync_quarantine WHERE source = %s AND entity = %s"
                " AND resolved_seq IS NULL LIMIT %s", (src, e, OPEN_VIEW_LIMIT + 1),
            ).fetchall())  # fmt: skip
            if sum(keys.values()) > OPEN_VIEW_LIMIT:
                self._open.pop((src, e), None)
                return None
            view = self._open[(src, e)] = _OpenKeys(last, keys)
        return view

    def _has_open(self, src: str, e: str) -> bool:
        row = self.conn.execute(
            self.d.sql(
                "SELECT 1 FROM sync_quarantine WHERE source = ? AND entity = ?"
                " AND resolved_seq IS NULL LIMIT 1"
            ),
            (src, e),
        ).fetchone()
        return row is not None

    def _open_entries(self, src: str, e: str, keys: list[str]) -> list[tuple[int, str, str, Any]]:
        """(id, source key, table, raw) of the open quarantine entries of ``keys``."""
        found: list[tuple[int, str, str, Any]] = []
        view = self._view
        if view is not None:
            # only the keys with an open entry (the defects: few) are read from the database
            listed = [k for k in keys if k in view.keys]
            if not listed:
                return []
            rows = self.conn.execute(
                "SELECT id, source_key, tbl, raw FROM sync_quarantine WHERE source = %s"
                " AND entity = %s AND resolved_seq IS NULL AND source_key = ANY(%s)",
                (src, e, listed), prepare=False,
            ).fetchall()  # fmt: skip
            return [(int(r[0]), str(r[1]), str(r[2]), r[3]) for r in rows]
        if self.d.name == "postgres":
            # The open entries of the source are few (the defects); read their keys once and
            # match in memory. Asking PostgreSQL for 20,000 keys (IN lists, `= ANY`, a join
            # with unnest) gave generic plans that compared every key with every row: the
            # 1M-row sync fell from 109k to 4.5k rows/s.
            wanted = set(keys)
            hits = [int(r[0]) for r in self.conn.execute(
                "SELECT id, source_key FROM sync_quarantine WHERE source = %s AND entity = %s"
                " AND resolved_seq IS NULL", (src, e),
            ).fetchall() if r[1] in wanted]  # fmt: skip
            if not hits:
                return []
            rows = self.conn.execute(
                "SELECT id, source_key, tbl, raw FROM sync_quarantine WHERE id = ANY(%s)",
                (hits,),
            ).fetchall()
            return [(int(r[0]), str(r[1]), str(r[2]), r[3]) for r in rows]
        for i in range(0, len(keys), 500):
            part = keys[i : i + 500]
            marks = ", ".join("?" * len(part))
            found += [(int(r[0]), str(r[1]), str(r[2]), r[3]) for r in self.conn.execute(
                self.d.sql(f"SELECT id, source_key, tbl, raw FROM sync_quarantine WHERE source = ?"
                           f" AND entity = ? AND resolved_seq IS NULL AND source_key IN ({marks})"),
                (src, e, *part),
            ).fetchall()]  # fmt: skip
        return found

    def _supersede(
        self, src: str, e: str, seq: int, ups: list[tuple[str, str, bytes]],
        dels: list[tuple[str, str]], skip: set[int],
    ) -> None:  # fmt: skip
        """Close the open entries of keys this batch gives a newer version (or deletes).

        A re-submission of such an entry would overwrite the newer version; it is refused.
        """
        deleted = {k for k, _ in dels}
        keys = set(map(itemgetter(0), ups)) | deleted
        if self._view is not None:  # only the keys with an open entry (set operations in C)
            keys = keys.intersection(self._view.keys)
        found = self._open_entries(src, e, list(keys))
        if not found:
            return
        hit = {k for _i, k, _t, _r in found}
        incoming = {k: j for k, _, j in ups if k in hit}
        # a duplicate-key entry (a later row of a drop with the same key) stays open while
        # the first occurrence is only read again unchanged: that is no newer version
        dup = self._duplicate_entries([i for i, *_ in found])
        same = self._unchanged(src, e, {k: incoming[k] for i, k, _t, _r in found
                                        if i in dup and k in incoming})  # fmt: skip
        closed = [(i, "deleted" if k in deleted else "superseded") for i, k, _t, _r in found
                  if i not in skip and not (i in dup and k in same)]  # fmt: skip
        key_of = {i: k for i, k, _t, _r in found}
        self._close(seq, [(i, key_of[i], why) for i, why in closed])

    def _close(self, seq: int, closed: list[tuple[int, str, str]]) -> None:
        """Close open entries (id, key, reason) without a re-submission, as of batch ``seq``."""
        if not closed:
            return
        if self._view is not None:
            self._view.removed += [k for _i, k, _why in closed]
        cur = self.conn.cursor()
        q = self.d.sql
        cur.executemany(
            q("UPDATE sync_quarantine SET resolved_seq = ? WHERE id = ?"),
            [(seq, i) for i, _k, _why in closed],
        )
        cur.executemany(
            q("INSERT INTO sync_quarantine_closed VALUES (?, ?, ?)"),
            [(i, seq, why) for i, _k, why in closed],
        )

    def _duplicate_entries(self, ids: list[int]) -> set[int]:
        out: set[int] = set()
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            marks = ", ".join("?" * len(part))
            out |= {int(r[0]) for r in self.conn.execute(
                self.d.sql(f"SELECT id FROM sync_quarantine WHERE id IN ({marks})"
                           " AND reasons LIKE ?"), (*part, "%duplicate key (also at row %"),
            ).fetchall()}  # fmt: skip
        return out

    def _unchanged(self, src: str, e: str, rows: dict[str, bytes]) -> set[str]:
        """The keys of ``rows`` whose current version has the same data."""
        same: set[str] = set()
        keys = list(rows)
        for i in range(0, len(keys), 500):
            part = keys[i : i + 500]
            marks = ", ".join("?" * len(part))
            for k, data in self.conn.execute(
                self.d.sql(f"SELECT source_key, data FROM c_{e} WHERE source = ?"
                           f" AND source_key IN ({marks})"), (src, *part),
            ).fetchall():  # fmt: skip
                doc = orjson.loads(data) if isinstance(data, str | bytes) else data
                if _canon(doc) == _canon(orjson.loads(rows[str(k)])):
                    same.add(str(k))
        return same

    def _new_entries(
        self, src: str, e: str, tbl: str, rows: list[tuple[str, str, bytes, list[str]]],
        has_open: bool,
    ) -> tuple[list[tuple[str, str, bytes, list[str]]], list[tuple[int, str]]]:  # fmt: skip
        """(new entries, stale open entries as (id, key)).

        An entry identical (table, key, raw values) to an open one is not entered again: a
        new drop or pass that still holds the same defective row does not quarantine it
        twice. A new entry of a key makes the key's other open entries of the table stale
        (the row changed while invalid, or through a valid version never read): they hold
        values the source no longer has, and re-submitting one would apply them. An open
        entry the batch holds again (a duplicate-key row of a drop, still there) stays, and
        so do the entries of rows without a key.
        """
        if not rows:
            return rows, []
        incoming = [(row[0], _canon(orjson.loads(row[2]))) for row in rows]
        seen: set[tuple[str, bytes]] = set()
        mine: list[tuple[int, str, bytes]] = []
        if has_open:
            for i, k, t, raw in self._open_entries(src, e, list({r[0] for r in rows})):
                if t == tbl:
                    doc = orjson.loads(raw) if isinstance(raw, str | bytes) else raw
                    seen.add((k, _canon(doc)))
                    mine.append((i, k, _canon(doc)))
        held = set(incoming)
        out = []
        for row, mark in zip(rows, incoming, strict=True):
            if mark not in seen:
                seen.add(mark)
                out.append(row)
        # rows without a key (a NULL or blank key part) are not versions of one another:
        # each keeps its own entry
        renewed = {r[0] for r in out} - {""}
        stale = [(i, k) for i, k, doc in mine if k in renewed and (k, doc) not in held]
        return out, stale

    def _replaced_keyless(
        self, src: str, e: str, tbl: str, key: list[str],
        rows: list[tuple[str, str, bytes, list[str]]],
    ) -> list[tuple[int, str]]:  # fmt: skip
        """The open entries of the table's rows with a NULL part in the ``key`` columns (the
        batch header's ``keyless``) that the batch's set — the complete current set of such
        rows, of which this is the first batch — does not hold: rows changed, corrected or
        deleted at the source. Nothing tells which old entry a changed keyless row replaces,
        so the set replaces them all; identical ones stay, and so do the entries of a blank
        (not NULL) key, read with the keyed rows."""
        held = {_canon(orjson.loads(raw)) for k, _p, raw, _r in rows if k == ""}
        stale = []
        for i, k, t, raw in self._open_entries(src, e, [""]):
            doc = orjson.loads(raw) if isinstance(raw, str | bytes) else raw
            nulls = isinstance(doc, dict) and any(doc.get(c) is None for c in key)
            if t == tbl and k == "" and nulls and _canon(doc) not in held:
                stale.append((i, k))
        return stale

    def _copy_new(
        self, e: str, src: str, seq: int, now: str, rows: list[tuple[str, str, bytes]],
        copy_rows: list[bytes] | None = None,
    ) -> bool:  # fmt: skip
        """When no key of the batch exists yet (a snapshot), COPY the rows straight into the
        current table: the same rows as the merge, without the staging round. A key that
        exists rolls the COPY back (the merge follows) and the next few batches of the
        entity merge directly."""
        copy = self.d.copy_upserts
        if copy is None:
            return False
        skip = self._copy_skip.get(e, 0)
        if skip:
            self._copy_skip[e] = skip - 1
            return False
        if copy_rows is not None:  # built before the batch's turn (Hub.receive)
            block = binary_block(copy_rows, int(seq), now)
        else:
            block = copy_binary_current(rows, src, int(seq), now)
        binary = block is not None
        if block is None:
            head = b"\t".join([copy_escape(src), b"%s", b"%s", b"%s", str(int(seq)).encode(),
                               copy_escape(now), copy_escape(now)])  # fmt: skip
            block = copy_upsert_block(rows, head + b"\n")
        if block is None:
            lines = ((src, k, j, p, seq, now, now) for k, p, j in rows)
            block = "".join("\t".join(map(copy_field, r)) + "\n" for r in lines).encode()
        if copy(self.conn, f"c_{e}", block, binary) is None:
            self._copy_skip[e] = 8
            return False
        return True

    def _record(self, batch: Batch, now: str, stored: int) -> Applied:
        counts = batch.header["counts"]
        # changes a later change of their key replaced within the chunk count as applied
        applied = int(counts["upserts"]) + int(counts["deletes"]) + int(counts.get("superseded", 0))
        done = Applied(batch.source, batch.seq, batch.header_sha256, "applied", applied,
                       int(counts["quarantined"]), int(counts["read"]))  # fmt: skip
        q = self.d.sql
        self.conn.execute(
            q("INSERT INTO sync_batches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
            (batch.source, stored, batch.header_sha256, str(batch.header["table"]),
             str(batch.header["entity"]), orjson.dumps(batch.header["position"]).decode(),
             done.read, done.applied, done.quarantined, now),
        )  # fmt: skip
        self.conn.execute(
            q("""INSERT INTO sync_sources VALUES (?, ?, ?) ON CONFLICT (source) DO UPDATE
                 SET last_seq = excluded.last_seq, updated_at = excluded.updated_at"""),
            (batch.source, stored, now),
        )
        return done


# a batch waiting for a row lock held by a speculation (HubStore.speculate) waits at most
# this long: a speculation waits for its turn, so an apply that would wait for it forever
# (a re-initialised agency's batch jumping the queue) fails instead and is re-sent
LOCK_TIMEOUT = "30s"


def _dead(conn: Any) -> bool:
    """A psycopg connection that was closed, or found broken by its last use."""
    return bool(getattr(conn, "closed", False) or getattr(conn, "broken", False))


def _bounded_lock_waits(conn: Any) -> None:
    conn.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
    conn.commit()


def open_store(url: str) -> HubStore:
    """The consolidated database at ``url`` (a PostgreSQL URL or a SQLite path); on
    PostgreSQL with spare connections for batches COPYed ahead of their turn."""
    conn, dialect = connect_hub(url)
    return HubStore(conn, dialect, connect=lambda: connect_hub(url)[0])


class _Stale(Exception):
    """A speculation that no longer holds (its transaction is rolled back, the batch applied
    as usual)."""


def _rolled_back(conn: Any) -> bool:
    """True when ``conn`` is idle outside a transaction (reusable), rolling back if needed."""
    try:
        conn.rollback()
        return True
    except Exception:
        return False


def _canon(doc: Any) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


def _superseded(batch: Batch) -> IntegrityError:
    return IntegrityError(
        f"batch {batch.seq} from {batch.source}: its agency state was superseded by a newer one"
        " (re-initialised)",
        code="sequence_conflict",
    )


def _last_per_key(rows: list[tuple[str, str, bytes]]) -> list[tuple[str, str, bytes]]:
    """Keep the last change of each key (a log-based batch may hold several)."""
    if len(set(map(itemgetter(0), rows))) == len(rows):
        return rows
    return list({k: (k, p, j) for k, p, j in rows}.values())

"""Review of the PostgreSQL hub's speculation (a snapshot batch COPYed on a spare connection
while its predecessor is applied; HubStore.speculate, Hub._speculate), by test.

Hub-level tests deliver signed envelopes from threads, with the predecessor held in its
apply by an outside lock on the source's ``sync_sources`` row, so that the next batch's COPY
is parked (idle in transaction) when the test goes on. Every wait on another thread or on the
server is bounded (a safety timeout); nothing asserts on time.

Defects found (each test failed before its fix): ``HubStore.close()`` left a parked
speculation's connection open, holding its row locks, and a speculation discarded after the
close went back to the pool of a closed store (a leaked connection); a second delivery of a
batch (a retry) that applied the usual way while the first delivery's COPY was parked
waited for that COPY's key locks while holding the hub's writer lock — both stalled until the
lock timeout and the retry failed; a spare connection that died while parked (an
``idle_in_transaction_session_timeout``, an administrator's ``pg_terminate_backend``) made
the batch fail with a raw driver error instead of being applied the usual way; a batch of a
superseded agency state (refused at its turn anyway) was COPYed ahead, holding locks on keys
the newer state writes.
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from synctools import SOURCE_ID, Keys

from lienthong.classification import Level
from lienthong.errors import BackendError, IntegrityError, TrustError
from lienthong.sync.envelope import Batch, build_batch
from lienthong.sync.hub import store as store_module
from lienthong.sync.hub.service import Hub
from lienthong.sync.hub.store import HubStore, open_store
from lienthong.sync.mapping import Mapped

pytestmark = pytest.mark.postgres

NOW = "2026-03-01T08:00:00+07:00"
SAFETY = 20.0  # seconds: a bound on waits for other threads, never an assertion


# ---------------------------------------------------------------------------------------
# helpers


def _doc(k: str, v: int = 0) -> bytes:
    return orjson.dumps({"full_name": f"NGUYỄN VĂN {k}", "v": v})


def _envelope(
    keys: Keys, seq: int, ups: list[str], *, source: str = SOURCE_ID, v: int = 0,
    bad: Sequence[str] = (), epoch: str | None = None, rebase: bool = False,
) -> bytes:  # fmt: skip
    mapped = Mapped(
        upserts=[(k, f"p:{k}", _doc(k, v)) for k in ups],
        quarantine=[(k, f"p:{k}", orjson.dumps({"ngay_sinh": "31/02/1990"}), ["bad date"])
                    for k in bad],
    )  # fmt: skip
    extra: dict[str, Any] = {}
    if epoch is not None:
        extra["epoch"] = epoch
    if rebase:
        extra["rebase"] = True
    return build_batch(
        source=source, seq=seq, table="citizens", entity="Citizen", level=Level.PUBLIC,
        position={"after": seq}, mapped=mapped, created_at=NOW, signer=keys.agency,
        recipient=None, extra=extra or None,
    )  # fmt: skip


def _batch(seq: int, ups: list[str], epoch: str | None = None, rebase: bool = False) -> Batch:
    rows = [(k, f"p:{k}", _doc(k)) for k in ups]
    header: dict[str, Any] = {
        "source": "S", "seq": seq, "table": "t", "entity": "Citizen", "position": {"a": seq},
        "counts": {"upserts": len(rows), "deletes": 0, "quarantined": 0, "read": len(rows)},
    }  # fmt: skip
    if epoch is not None:
        header["epoch"] = epoch
    if rebase:
        header["rebase"] = True
    return Batch(header, f"h{seq}-{epoch}", rows, [], [], [])


def _admin(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=True)


def _others(admin: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    """The other connections to this test database: (pid, state, query)."""
    return admin.execute(
        "SELECT pid, state, query FROM pg_stat_activity WHERE datname = current_database()"
        " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
    ).fetchall()


def _until(check: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + SAFETY
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting: {what}")
        time.sleep(0.01)


def _parked(admin: psycopg.Connection[Any]) -> int:
    """Speculations COPYed and waiting for their turn (idle in transaction after the COPY)."""
    return sum(
        1 for _pid, state, query in _others(admin)
        if state == "idle in transaction" and query == "RELEASE SAVEPOINT lt_copy"
    )  # fmt: skip


def _lock_waits(admin: psycopg.Connection[Any]) -> int:
    row = admin.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        " AND datname = current_database()"
    ).fetchone()
    return int(row[0]) if row else 0


class Deliveries:
    """Envelopes delivered to a hub from threads; acks and errors kept per name."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.threads: dict[str, threading.Thread] = {}
        self.acks: dict[str, bytes] = {}
        self.errors: dict[str, BaseException] = {}

    def start(self, name: str, envelope: bytes) -> None:
        def run() -> None:
            try:
                self.acks[name] = self.hub.receive(envelope)
            except BaseException as exc:  # kept for the assertions
                self.errors[name] = exc

        t = threading.Thread(target=run, name=name, daemon=True)
        self.threads[name] = t
        t.start()

    def join(self) -> None:
        for name, t in self.threads.items():
            t.join(SAFETY * 3)
            assert not t.is_alive(), f"delivery {name} still running"

    def status(self, name: str) -> str:
        return str(orjson.loads(_ack_fields(self.acks[name]))["status"])


def _ack_fields(ack: bytes) -> bytes:
    (n,) = struct.unpack_from(">I", ack, 0)  # the signed ack: length, fields, signature
    return ack[4 : 4 + n]


@contextmanager
def _held(url: str, source: str = SOURCE_ID) -> Iterator[Callable[[], None]]:
    """Lock the source's ``sync_sources`` row from outside; yields the release function."""
    blocker = psycopg.connect(url)
    blocker.execute("SELECT last_seq FROM sync_sources WHERE source = %s FOR UPDATE", (source,))
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            blocker.rollback()
            released = True

    try:
        yield release
    finally:
        release()
        blocker.close()


def _rows(store: HubStore) -> dict[tuple[str, str], tuple[Any, int]]:
    return {
        (str(s), str(k)): (d, int(q))
        for s, k, d, q in store.conn.execute(
            "SELECT source, source_key, data, batch_seq FROM c_citizen"
        ).fetchall()
    }


def _seqs(store: HubStore, source: str = SOURCE_ID) -> list[int]:
    rows = store.conn.execute(
        "SELECT seq FROM sync_batches WHERE source = %s ORDER BY seq", (source,)
    ).fetchall()
    store.conn.rollback()
    return [int(r[0]) for r in rows]


def _keys(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i:04d}" for i in range(n)]


@pytest.fixture
def reaper(pg_dsn: str) -> Iterator[None]:
    """After the test (before its schema is dropped: list it after pg_schema), end any
    connection the test left open — a leaked one would hold the DROP SCHEMA forever."""
    yield
    with _admin(pg_dsn) as admin:
        for pid, *_ in _others(admin):
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


@pytest.fixture
def pg_store(pg_schema: str, reaper: None) -> Iterator[HubStore]:
    """The consolidated database on this test's schema, closed after the test (before the
    reaper ends what it leaked and the schema is dropped)."""
    store = open_store(pg_schema)
    try:
        yield store
    finally:
        store.close()


# ---------------------------------------------------------------------------------------
# defects (each failed before its fix)


def test_close_ends_a_parked_speculation_and_leaks_no_connection(
    pg_schema: str, reaper: None
) -> None:
    store = open_store(pg_schema)
    with _admin(pg_schema) as admin:
        store.apply(_batch(1, ["a"]), NOW)
        spec = store.speculate(_batch(3, ["c"]), store.prepare(_batch(3, ["c"])), NOW)
        assert spec is not None and _parked(admin) == 1
        store.close()  # the hub shuts down while batch 3 waits for its turn
        # the parked COPY's transaction ends with the store: no lock on key c outlives it
        _until(lambda: not _others(admin), "the store's connections to close")
        store.discard(spec)  # the delivery thread gives up afterwards: nothing reopens
        assert _others(admin) == []
        with pytest.raises(BackendError):  # and nothing is applied by a closed store
            store.apply(_batch(2, ["b"]), NOW)
        assert store.speculate(_batch(3, ["c"]), store.prepare(_batch(3, ["c"])), NOW) is None
        assert _others(admin) == []
        # key c is free: an outside insert does not wait for a lock
        admin.execute("SET lock_timeout = '1s'")
        admin.execute("INSERT INTO c_citizen VALUES ('S', 'c', '{}', 'p', 9, now(), now())")


def test_apply_with_a_speculation_after_close_is_refused_not_committed(
    pg_schema: str, reaper: None
) -> None:
    store = open_store(pg_schema)
    with _admin(pg_schema) as admin:
        store.apply(_batch(1, ["a"]), NOW)
        two = _batch(2, ["b"])
        spec = store.speculate(two, store.prepare(two), NOW)
        assert spec is not None
        store.close()
        with pytest.raises(BackendError):
            store.apply(two, NOW, store.prepare(two), spec)
        assert [r[0] for r in admin.execute("SELECT source_key FROM c_citizen")] == ["a"]
        _until(lambda: not _others(admin), "the store's connections to close")


def test_a_dead_spare_connection_falls_back_to_the_usual_apply(
    pg_schema: str, reaper: None
) -> None:
    # e.g. idle_in_transaction_session_timeout, or an administrator ending the backend
    store = open_store(pg_schema)
    try:
        with _admin(pg_schema) as admin:
            store.apply(_batch(1, ["a"]), NOW)
            two = _batch(2, ["b", "c"])
            spec = store.speculate(two, store.prepare(two), NOW)
            assert spec is not None
            admin.execute("SELECT pg_terminate_backend(%s)", (spec.conn.info.backend_pid,))
            _until(lambda: _parked(admin) == 0, "the spare's backend to end")
            done = store.apply(two, NOW, store.prepare(two), spec)
            assert done.status == "applied" and store.speculated == 0
            assert sorted(k for _s, k in _rows(store)) == ["a", "b", "c"]
            # the dead connection was not given back: the next speculation opens a new one
            three = _batch(3, ["d"])
            spec = store.speculate(three, store.prepare(three), NOW)
            assert spec is not None
            assert store.apply(three, NOW, store.prepare(three), spec).status == "applied"
            assert store.speculated == 1 and _seqs(store, "S") == [1, 2, 3]
    finally:
        store.close()


def test_no_speculation_for_a_superseded_agency_state(
    pg_schema: str, reaper: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a late batch of the old state is refused at its turn: COPYing it ahead only holds locks
    # on keys the new state's re-snapshot writes (its batch on the main connection waited for
    # them, holding the writer, until the lock timeout)
    monkeypatch.setattr(store_module, "LOCK_TIMEOUT", "1s")
    store = open_store(pg_schema)
    try:
        store.apply(_batch(1, ["a"], epoch="E1", rebase=True), NOW)
        store.apply(_batch(2, ["b"], epoch="E1"), NOW)
        store.apply(_batch(1, ["e"], epoch="E2", rebase=True), NOW)  # re-initialised
        assert not store._copy_skip.get("citizen")  # nothing else stops a COPY ahead
        late = _batch(3, ["c"], epoch="E1")
        spec = store.speculate(late, store.prepare(late), NOW)
        assert spec is None
        two = _batch(2, ["c"], epoch="E2")  # the new state's batch with the same new key
        assert store.apply(two, NOW, store.prepare(two)).status == "applied"
        with pytest.raises(IntegrityError) as err:
            store.apply(late, NOW, store.prepare(late))
        assert err.value.code == "sequence_conflict"
        # a legacy (untagged) batch once epochs exist is no newer state either
        legacy = _batch(9, ["z"])
        assert store.speculate(legacy, store.prepare(legacy), NOW) is None
    finally:
        store.close()


def test_a_retry_that_applies_the_usual_way_does_not_wait_for_the_parked_copy(
    keys: Keys, pg_schema: str, reaper: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batch 3 is delivered twice: the first delivery COPYed it ahead (parked while batch 2 is
    held), the second cannot speculate (no spare free) and is let through first at batch 3's
    turn. Before the fix its COPY on the main connection waited for the parked COPY's key
    locks while holding the writer lock the first delivery needed: the lock timeout ended it
    (503 to the sender) — now a second delivery waits until the first one is done."""
    monkeypatch.setattr(store_module, "LOCK_TIMEOUT", "2s")
    store = open_store(pg_schema)
    hub = keys.hub_for(store)
    ks = _keys("k", 30)
    hub.receive(_envelope(keys, 1, ks[:10]))
    envs = {n: _envelope(keys, n, ks[(n - 1) * 10 : n * 10]) for n in (2, 3)}
    plain_entered = threading.Event()
    real_apply, real_wait = store.apply, hub._wait_turn

    def apply(batch: Batch, now: str, prepared: Any = None, spec: Any = None) -> Any:
        if batch.seq == 3 and spec is None:
            plain_entered.set()
        return real_apply(batch, now, prepared, spec)

    def wait_turn(source: str, epoch: str, seq: int) -> None:
        real_wait(source, epoch, seq)
        if threading.current_thread().name == "3a":  # the speculating delivery lets 3b first
            end = time.monotonic() + SAFETY
            while not (plain_entered.is_set() or getattr(hub, "_repeats_waiting", 0)):
                assert time.monotonic() < end, "the second delivery neither applied nor waited"
                time.sleep(0.01)

    monkeypatch.setattr(store, "apply", apply)
    monkeypatch.setattr(hub, "_wait_turn", wait_turn)
    run = Deliveries(hub)
    try:
        with _admin(pg_schema) as admin, _held(pg_schema) as release:
            run.start("2", envs[2])
            _until(lambda: _lock_waits(admin) == 1, "batch 2 to wait for the row lock")
            run.start("3a", envs[3])
            _until(lambda: _parked(admin) == 1, "batch 3 to be COPYed ahead")
            monkeypatch.setattr(store, "speculate", lambda *_a: None)  # no spare free now
            run.start("3b", envs[3])
            _until(
                lambda: run.threads["3b"].is_alive() and hub._busy.get(SOURCE_ID) == 3,
                "the second delivery of batch 3 to arrive",
            )
            release()
            run.join()
        assert run.errors == {}
        assert sorted(map(run.status, ("2", "3a", "3b"))) == ["applied", "applied", "duplicate"]
        assert _seqs(store) == [1, 2, 3] and len(_rows(store)) == 30
        health = hub.health()["batches"]
        assert (health["applied"], health["duplicate"], health["refused"]) == (3, 1, 0)
        assert health["copied_ahead"] == store.speculated
    finally:
        store.close()


# ---------------------------------------------------------------------------------------
# scenarios that held (kept as regression tests)


def _hold_and_speculate(
    hub: Hub, url: str, deliveries: list[tuple[str, bytes]], parked: int,
    source: str = SOURCE_ID, after: Callable[[Deliveries], None] | None = None,
) -> Deliveries:  # fmt: skip
    """Deliver the first envelope while the source row is locked from outside, then the
    others; release once ``parked`` COPYs wait for their turn; join."""
    run = Deliveries(hub)
    with _admin(url) as admin, _held(url, source) as release:
        first, *rest = deliveries
        run.start(*first)
        _until(lambda: _lock_waits(admin) == 1, "the first delivery to wait for the row lock")
        for name, env in rest:
            run.start(name, env)
        _until(lambda: _parked(admin) >= parked, f"{parked} COPY(s) ahead")
        if after is not None:
            after(run)
        release()
        run.join()
        _until(lambda: _parked(admin) == 0, "no COPY left parked")
    return run


def test_two_speculated_batches_commit_in_order_once(
    keys: Keys, pg_schema: str, pg_store: HubStore
) -> None:
    store = pg_store
    hub = keys.hub_for(store)
    hub.receive(_envelope(keys, 1, _keys("a", 5)))
    envs = [(str(n), _envelope(keys, n, _keys(f"n{n}-", 20))) for n in (2, 3, 4)]
    run = _hold_and_speculate(hub, pg_schema, envs, parked=2)
    assert run.errors == {}
    assert _seqs(store) == [1, 2, 3, 4]
    rows = _rows(store)
    assert len(rows) == 65
    # each key carries its own batch's number: nothing was committed under another
    assert {q for (s, k), (_d, q) in rows.items() if k.startswith("n3-")} == {3}
    assert {q for (s, k), (_d, q) in rows.items() if k.startswith("n4-")} == {4}
    assert store.speculated == 2
    assert hub.health()["batches"] == {
        "applied": 4, "duplicate": 0, "refused": 0, "out_of_sequence": 0,
        "unavailable": 0, "copied_ahead": 2}  # fmt: skip


def test_overlapping_keys_are_never_copied_ahead(
    keys: Keys, pg_schema: str, pg_store: HubStore
) -> None:
    # batch 3 repeats a key of batch 2 (a merge of the same source): no COPY ahead, the
    # merge keeps the history; batch 4 (new keys) is copied ahead
    store = pg_store
    hub = keys.hub_for(store)
    hub.receive(_envelope(keys, 1, ["x"]))
    envs = [("2", _envelope(keys, 2, ["x", "y"], v=2)),
            ("3", _envelope(keys, 3, ["y", "z"], v=3)),
            ("4", _envelope(keys, 4, ["w"], v=4))]  # fmt: skip
    run = _hold_and_speculate(hub, pg_schema, envs, parked=1)
    assert run.errors == {}
    rows = _rows(store)
    assert {k: (d["v"], q) for (_s, k), (d, q) in rows.items()} == {
        "x": (2, 2), "y": (3, 3), "z": (3, 3), "w": (4, 4)}  # fmt: skip
    history = store.conn.execute(
        "SELECT source_key, batch_seq, ended_by FROM h_citizen ORDER BY 1, 2"
    ).fetchall()
    assert history == [("x", 1, "update"), ("y", 2, "update")]
    assert store.speculated == 1 and _seqs(store) == [1, 2, 3, 4]


def test_a_refused_predecessor_loses_nothing(keys: Keys, pg_store: HubStore) -> None:
    # batch 2 arrives tampered (refused on verification): batch 3 is not copied ahead of a
    # predecessor that never came; the intact re-sent batch 2, then 3, apply once each
    store = pg_store
    hub = keys.hub_for(store)
    hub.receive(_envelope(keys, 1, ["a"]))
    two, three = _envelope(keys, 2, ["b"]), _envelope(keys, 3, ["c"])
    tampered = two[:-1] + bytes([two[-1] ^ 1])
    with pytest.raises((TrustError, IntegrityError)):
        hub.receive(tampered)
    with pytest.raises(IntegrityError) as err:  # after the grace, the store decides
        hub.receive(three)
    assert err.value.code == "sequence_gap"
    for env in (two, three):
        hub.receive(env)
    assert _seqs(store) == [1, 2, 3] and len(_rows(store)) == 3
    assert hub.health()["batches"] == {  # the tampered one refused, 3 out of sequence
        "applied": 3, "duplicate": 0, "refused": 1, "out_of_sequence": 1,
        "unavailable": 0, "copied_ahead": 0}  # fmt: skip


def test_two_sources_speculate_side_by_side(keys: Keys, pg_schema: str, reaper: None) -> None:
    other = "BHYT.HN"
    store = open_store(pg_schema)
    hub = Hub(store, keys.hub, {SOURCE_ID: keys.agency.public_key(),
                                other: keys.agency.public_key()})  # fmt: skip
    try:
        for src in (SOURCE_ID, other):  # the same source keys under two sources
            hub.receive(_envelope(keys, 1, ["a"], source=src))
        envs = [("s2", _envelope(keys, 2, _keys("k", 10))),
                ("s3", _envelope(keys, 3, _keys("m", 10))),
                ("o2", _envelope(keys, 2, _keys("k", 10), source=other)),
                ("o3", _envelope(keys, 3, _keys("m", 10), source=other))]  # fmt: skip
        run = _hold_and_speculate(hub, pg_schema, envs, parked=1)
        assert run.errors == {}
        assert _seqs(store) == [1, 2, 3] and _seqs(store, other) == [1, 2, 3]
        rows = _rows(store)
        assert len(rows) == 42
        assert {q for (s, k), (_d, q) in rows.items() if k.startswith("m")} == {3}
        assert hub.health()["batches"]["applied"] == 6
        assert hub.health()["batches"]["copied_ahead"] == store.speculated >= 1
    finally:
        store.close()


def test_a_new_agency_state_while_the_old_one_speculates(
    keys: Keys, pg_schema: str, reaper: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the old state's batch 3 is copied ahead (batch 2 held); the new state's batch 1
    # re-snapshots the same keys. It waited for the COPY's locks up to the lock timeout (then
    # 503, re-sent); since the second checker's review it ends the old state's parked copy
    # first. In the end every row is the new state's, applied once
    monkeypatch.setattr(store_module, "LOCK_TIMEOUT", "1s")
    store = open_store(pg_schema)
    hub = keys.hub_for(store)
    try:
        hub.receive(_envelope(keys, 1, ["a"], epoch="E1", rebase=True))
        envs = [("2", _envelope(keys, 2, ["b"], epoch="E1")),
                ("3", _envelope(keys, 3, ["c"], epoch="E1"))]  # fmt: skip
        rebase = _envelope(keys, 1, ["a", "b", "c"], v=9, epoch="E2", rebase=True)

        def new_state(run: Deliveries) -> None:
            run.start("new", rebase)

        run = _hold_and_speculate(hub, pg_schema, envs, parked=1, after=new_state)
        assert "2" not in run.errors and "new" not in run.errors, run.errors
        late = run.errors.get("3")
        # batch 3 of the old state, if it failed, was refused for its sequence — nothing else
        assert late is None or (
            isinstance(late, IntegrityError) and late.code in ("sequence_conflict", "sequence_gap")
        )
        hub.receive(_envelope(keys, 2, ["d"], v=9, epoch="E2"))
        # whichever came first, the new state's re-snapshot holds every key at the end
        assert {k: d["v"] for (_s, k), (d, _q) in _rows(store).items()} == {
            "a": 9, "b": 9, "c": 9, "d": 9}  # fmt: skip
        seqs = _seqs(store)
        assert seqs == sorted(set(seqs)) and seqs == list(range(1, len(seqs) + 1))
    finally:
        store.close()


def test_quarantine_of_the_predecessor_and_a_speculated_valid_version(
    keys: Keys, pg_schema: str, pg_store: HubStore
) -> None:
    # batch 2 quarantines key q (invalid), batch 3 — copied ahead meanwhile — brings a valid
    # q: at its turn the open entry of q rolls the copy back, the merge closes it as
    # superseded, exactly as without speculation
    store = pg_store
    hub = keys.hub_for(store)
    hub.receive(_envelope(keys, 1, ["a"]))
    envs = [("2", _envelope(keys, 2, ["b"], bad=["q"])),
            ("3", _envelope(keys, 3, ["q", "c"]))]  # fmt: skip
    run = _hold_and_speculate(hub, pg_schema, envs, parked=1)
    assert run.errors == {}
    assert store.speculated == 0  # rolled back at its turn
    entries = store.conn.execute(
        "SELECT q.source_key, q.seq, q.resolved_seq, x.reason FROM sync_quarantine q"
        " LEFT JOIN sync_quarantine_closed x ON x.id = q.id"
    ).fetchall()
    assert entries == [("q", 2, 3, "superseded")]
    assert sorted(k for _s, k in _rows(store)) == ["a", "b", "c", "q"]
    assert hub.health()["batches"]["copied_ahead"] == 0


def test_hub_close_while_a_delivery_speculates(keys: Keys, pg_schema: str, reaper: None) -> None:
    # the hub shuts down while batch 2 is held and batch 3 parked: batch 2 fails, batch 3's
    # copy is discarded; no connection of the store stays open
    store = open_store(pg_schema)
    hub = keys.hub_for(store)
    hub.receive(_envelope(keys, 1, ["a"]))
    envs = [("2", _envelope(keys, 2, ["b"])), ("3", _envelope(keys, 3, ["c"]))]
    run = Deliveries(hub)
    with _admin(pg_schema) as admin:
        with _held(pg_schema) as release:
            run.start(*envs[0])
            _until(lambda: _lock_waits(admin) == 1, "batch 2 to wait")
            run.start(*envs[1])
            _until(lambda: _parked(admin) == 1, "batch 3 COPYed ahead")
            store.close()
            _until(lambda: _parked(admin) == 0, "the parked COPY to end with the store")
            release()
            run.join()
        assert set(run.errors) == {"2", "3"}
        assert all(isinstance(e, BackendError) for e in run.errors.values())
        _until(lambda: not _others(admin), "no connection left")
        assert [r[0] for r in admin.execute("SELECT source_key FROM c_citizen")] == ["a"]


def test_the_sqlite_hub_never_speculates(keys: Keys, tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "hub.db"))
    hub = keys.hub_for(store)
    try:
        assert not store.can_speculate
        run = Deliveries(hub)
        for n in (1, 2, 3):
            run.start(str(n), _envelope(keys, n, _keys(f"s{n}-", 10)))
            run.threads[str(n)].join(SAFETY)
        run.join()
        assert run.errors == {}
        assert hub.health()["batches"] == {
            "applied": 3, "duplicate": 0, "refused": 0, "out_of_sequence": 0,
            "unavailable": 0, "copied_ahead": 0}  # fmt: skip
        assert hub._pending == {}
        with pytest.raises(IntegrityError):  # batch 5 before 4: a gap
            hub.receive(_envelope(keys, 5, ["g"]))
        store.close()
        with pytest.raises(BackendError):  # the database is gone: the agency re-sends
            hub.receive(_envelope(keys, 4, ["h"]))
        counts = hub.health()["batches"]
        assert (counts["applied"], counts["out_of_sequence"], counts["unavailable"]) == (3, 1, 1)
    finally:
        store.close()

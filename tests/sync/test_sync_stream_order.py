"""One change per key in a stream chunk: the last one, in commit order."""

from __future__ import annotations

from lienthong.sync.model import last_change_per_key


def test_last_change_of_each_key_wins_and_the_others_are_counted() -> None:
    changes = [
        (False, (1,), (1, "a")),
        (True, (2,), (2,)),
        (False, (2,), (2, "back")),  # deleted, then inserted again: kept
        (False, (3,), (3, "x")),
        (True, (3,), (3,)),  # inserted, then deleted: a tombstone
        (False, (1,), (1, "b")),
    ]
    rows, deletes, superseded = last_change_per_key(changes)
    assert rows == [(2, "back"), (1, "b")]  # in the order of their last change
    assert deletes == [(3,)]
    assert superseded == 3


def test_no_repeated_key_changes_nothing() -> None:
    changes = [(False, (i,), (i, str(i))) for i in range(5)] + [(True, (9,), (9,))]
    assert last_change_per_key(changes) == ([(i, str(i)) for i in range(5)], [(9,)], 0)

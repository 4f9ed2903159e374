"""Property tests: the loader never fails other than with ConfigError, routes are symmetric."""

from __future__ import annotations

import copy
import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lienthong.errors import ConfigError
from lienthong.federation.dump import registry_to_dict
from lienthong.federation.loader import registry_from_dict
from lienthong.federation.routing import route
from lienthong.federation.sample import sample_registry

SAMPLE = sample_registry()
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=12,
)


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


PATHS = [p for p in _paths(SAMPLE) if p]


@settings(max_examples=150, deadline=None)
@given(json_values)
def test_arbitrary_documents_only_raise_config_error(doc: Any) -> None:
    try:
        registry_from_dict(doc)
    except ConfigError as exc:
        assert exc.details["problems"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(PATHS), json_values)
def test_mutated_sample_is_rejected_cleanly_or_round_trips(
    path: tuple[Any, ...], value: Any
) -> None:
    doc = copy.deepcopy(SAMPLE)
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    try:
        reg = registry_from_dict(doc)
    except ConfigError as exc:
        assert all(": " in p or p for p in exc.details["problems"])
        return
    assert registry_from_dict(registry_to_dict(reg)) == reg


def test_routes_are_symmetric_and_loop_free() -> None:
    reg = registry_from_dict(SAMPLE)
    for a, b in itertools.combinations([m.id for m in reg.members], 2):
        there = [h.id for h in route(reg, a, b)]
        back = [h.id for h in route(reg, b, a)]
        assert there[0] == str(a) and there[-1] == str(b)
        assert back == list(reversed(there))
        assert len(set(there)) == len(there)

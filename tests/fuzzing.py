"""Hypothesis settings for the fuzz tests of untrusted decoders (docs/security.md).

CI runs a few seconds per decoder; `REXEC_FUZZ_EXAMPLES=N` runs N examples of each
instead (for example a million, overnight), with no deadline either way.
"""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st


def fuzz_settings(examples: int) -> settings:
    """`examples` in CI, or what REXEC_FUZZ_EXAMPLES asks for."""
    deep = os.environ.get("REXEC_FUZZ_EXAMPLES", "").strip()
    return settings(
        max_examples=int(deep) if deep else examples,
        deadline=None,
        database=None,  # no .hypothesis directory left in the worktree
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


# Any JSON value, nested a little, with the odd tokens Python's json also accepts.
json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=8,
)


def json_objects(keys: list[str]) -> st.SearchStrategy[bytes]:
    """JSON objects whose keys are mostly the ones a decoder looks for, as bytes."""
    key = st.sampled_from(keys) | st.text(max_size=8)
    return st.dictionaries(key, json_values, max_size=len(keys) + 2).map(
        lambda obj: json.dumps(obj).encode()
    )

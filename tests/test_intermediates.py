"""Shared intermediates: which a run needs, materialised once, equal to the expression, released after."""

from __future__ import annotations

import pytest

from market_surveillance.io.canonical import from_arrow
from market_surveillance.rules import intermediates
from market_surveillance.rules.registry import all_rules
from market_surveillance.testing import mini_dataset


def _sorted(tab):
    return tab.to_pyarrow().sort_by([(c, "ascending") for c in tab.columns if c != "filled"])


def test_needed_lists_only_declared_intermediates_with_their_base_tables():
    rules = [cls() for cls in all_rules()]
    assert intermediates.needed([]) == []
    read = {n for r in rules for n in r.reads}
    assert set(intermediates.needed(rules, everything=True)) == read
    assert set(intermediates.needed(rules)) == {n for n in read if intermediates.INTERMEDIATES[n].shared}
    assert "account_trades" not in intermediates.needed(rules)
    _, tables, _ = from_arrow(mini_dataset())
    no_orders = {k: v for k, v in tables.items() if k != "orders"}
    assert "lifecycle" not in intermediates.needed(rules, no_orders, everything=True)
    assert "liquidity" not in intermediates.needed(rules, {**tables, "liquidity": tables["trades"]})


@pytest.mark.parametrize("name", list(intermediates.INTERMEDIATES))
def test_materialize_equals_the_expression_and_release_drops_it(name: str):
    backend, tables, _ = from_arrow(mini_dataset())
    mat = intermediates.materialize(tables, [name])
    assert set(mat) == {name}
    cached = mat[name]
    assert cached.count().execute() > 0
    assert _sorted(cached).equals(_sorted(intermediates.get(tables, name)))
    # get prefers the materialised table
    assert intermediates.get({**tables, **mat}, name) is cached
    held = cached.get_name().rsplit(".", 1)[-1]

    def temp_tables() -> set[str]:
        return {r[0] for r in backend.con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()}

    assert held in temp_tables()
    intermediates.release(mat)
    assert held not in temp_tables()

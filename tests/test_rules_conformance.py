"""Conformance of every registered rule (like scikit-learn's test_common)."""

from __future__ import annotations

import dataclasses

import pyarrow as pa
import pytest

from market_surveillance.alerts import ALERT_SCHEMA
from market_surveillance.enums import Typology
from market_surveillance.io.canonical import from_arrow
from market_surveillance.rules.base import Rule
from market_surveillance.rules.registry import RESERVED_IDS, all_rules
from market_surveillance.testing import empty_dataset, mini_dataset

RULES = all_rules()
IDS = [cls.name for cls in RULES]


def test_registry_ids_are_reserved_and_unique():
    assert len({c.rule_id for c in RULES}) == len(RULES)
    for cls in RULES:
        assert RESERVED_IDS[cls.rule_id] == cls.name


@pytest.mark.parametrize("cls", RULES, ids=IDS)
def test_rule_docstring_has_three_parts(cls: type[Rule]):
    doc = cls.__doc__ or ""
    for part in ("What it detects", "Why it is abusive", "Known false positives"):
        assert part in doc, f"{cls.__name__} docstring lacks {part!r}"


@pytest.mark.parametrize("cls", RULES, ids=IDS)
def test_rule_declares_typology_metric_and_threshold(cls: type[Rule]):
    assert isinstance(cls.typology, Typology)
    assert cls.metric
    p = cls.Params()
    assert hasattr(p, cls.threshold_param)
    for t in cls.also_answers:
        assert isinstance(t, Typology)


@pytest.mark.parametrize("cls", RULES, ids=IDS)
def test_rule_params_defaults_valid_and_bad_values_refused(cls: type[Rule]):
    p = cls.Params()
    assert dataclasses.is_dataclass(p)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(p, dataclasses.fields(p)[0].name, 1)
    checked = 0
    for f in dataclasses.fields(p):
        meta = f.metadata
        default = f.default
        if meta.get("choices") is not None:
            bad = "__not_a_choice__"
        elif isinstance(default, bool):
            bad = "yes"
        elif isinstance(default, int | float) and meta.get("low") is not None:
            bad = meta["low"] - 1 if meta.get("closed", "both") in ("both", "left") else meta["low"]
            bad = type(default)(bad)
        else:
            continue
        with pytest.raises(ValueError, match=rf"The '{f.name}' parameter of {type(p).__name__} must be"):
            cls.Params(**{f.name: bad})
        checked += 1
    assert checked, f"{cls.__name__} declares no constrained parameter"


@pytest.mark.parametrize("cls", RULES, ids=IDS)
def test_rule_empty_input_gives_no_alerts(cls: type[Rule]):
    _, tables, _ = from_arrow(empty_dataset())
    out = cls().run(tables)
    assert out.num_rows == 0
    assert out.schema.equals(ALERT_SCHEMA)


def _snapshot(tables) -> dict[str, pa.Table]:
    return {name: t.to_pyarrow() for name, t in tables.items()}


@pytest.mark.parametrize("cls", RULES, ids=IDS)
def test_rule_deterministic_and_inputs_not_mutated(cls: type[Rule]):
    _, tables, _ = from_arrow(mini_dataset())
    before = _snapshot(tables)
    first = cls().run(tables)
    second = cls().run(tables)
    assert first.equals(second)
    assert first.schema.equals(ALERT_SCHEMA)
    after = _snapshot(tables)
    for name in before:
        assert before[name].equals(after[name]), f"{cls.name} changed input table {name}"


def test_registry_discovers_every_rule_module_itself():
    from market_surveillance.rules.registry import rule_modules

    mods = rule_modules()
    for cls in RULES:
        assert cls.__module__ in mods, f"{cls.__module__} not found by the registry's module scan"
    # helpers are scanned too (importing them is harmless) but never private modules
    assert "market_surveillance.rules._common" not in mods


def test_registry_refuses_duplicate_and_reserved_ids():
    from market_surveillance.rules.registry import register

    taken = RULES[0]
    dup = type("Dup", (taken,), {"name": "dup_rule_for_test"})
    with pytest.raises(ValueError, match="reserved for"):
        register(dup)
    fresh = type("Fresh", (taken,), {"rule_id": "MS999", "name": taken.name})
    with pytest.raises(ValueError, match="duplicate rule"):
        register(fresh)


class _Recording(dict):
    """A tables mapping that records which names a rule looks up (``in`` or ``[]``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.asked: set[str] = set()

    def __contains__(self, name: object) -> bool:
        self.asked.add(str(name))
        return super().__contains__(name)

    def __getitem__(self, name: str):
        self.asked.add(name)
        return super().__getitem__(name)


@pytest.mark.parametrize("cls", RULES, ids=IDS)
def test_rule_reads_exactly_the_intermediates_it_declares(cls: type[Rule]):
    from market_surveillance.rules.intermediates import INTERMEDIATES

    _, tables, _ = from_arrow(mini_dataset())
    rec = _Recording(tables)
    cls().execute(rec)
    assert set(cls.reads) <= set(INTERMEDIATES), f"{cls.name} declares unknown intermediates"
    assert rec.asked & set(INTERMEDIATES) == set(cls.reads), (
        f"{cls.name} reads {sorted(rec.asked & set(INTERMEDIATES))} but declares {sorted(cls.reads)}"
    )


@pytest.fixture(scope="module")
def reference_world():
    from market_surveillance.simulate import simulate

    _, tables, _ = from_arrow(simulate(7, scale="small"))
    return tables


@pytest.mark.parametrize("cls", [c for c in RULES if c.reads], ids=[c.name for c in RULES if c.reads])
def test_rule_same_alerts_on_materialised_intermediates(cls: type[Rule], reference_world):
    from market_surveillance.rules import intermediates

    tables = reference_world
    rule = cls()
    plain = rule.run(tables)
    mat = intermediates.materialize(tables, cls.reads)
    try:
        shared = rule.run({**tables, **mat})
    finally:
        intermediates.release(mat)
    assert shared.equals(plain)

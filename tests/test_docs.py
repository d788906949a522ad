from __future__ import annotations

from pathlib import Path

from market_surveillance.rules.docs import registry_markdown

ROOT = Path(__file__).resolve().parents[1]


def test_rules_doc_matches_registry():
    doc = ROOT / "docs" / "rules.md"
    assert doc.read_text() == registry_markdown(), (
        "docs/rules.md is stale: run `market-surveillance rules --markdown > docs/rules.md`"
    )


def test_schema_doc_matches_schema():
    from market_surveillance.schema import schema_markdown

    assert (ROOT / "docs" / "schema.md").read_text() == schema_markdown(), "docs/schema.md is stale"

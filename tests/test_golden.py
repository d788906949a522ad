"""The reference scenario's alert set stays identical from commit to commit unless the change is explained."""

from __future__ import annotations

from pathlib import Path

from market_surveillance.testing import golden_alerts

GOLDEN = Path(__file__).parent / "golden" / "reference_alerts.txt"


def test_reference_scenario_alert_set_unchanged():
    expected = GOLDEN.read_text().splitlines()
    got = golden_alerts(7)
    added, removed = sorted(set(got) - set(expected)), sorted(set(expected) - set(got))
    assert not added and not removed, (
        f"alert set of the reference scenario changed: +{added[:10]} -{removed[:10]} "
        "(if intended, regenerate tests/golden/reference_alerts.txt and explain why in the commit)"
    )

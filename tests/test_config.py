from __future__ import annotations

import pytest

from market_surveillance.rules.config import ConfigError, build_rules, load_config
from market_surveillance.rules.self_trade import SelfTrade, SelfTradeParams


def test_build_rules_overrides_global_and_per_asset(tmp_path):
    cfg = tmp_path / "rules.toml"
    cfg.write_text('[self_trade]\nmin_trades = 2\n\n[self_trade.assets."PUMP-USD"]\nmin_trades = 3\n')
    rules = {r.name: r for r in build_rules(load_config(cfg))}
    st = rules["self_trade"]
    assert st.params.min_trades == 2
    assert st.asset_params["PUMP-USD"].min_trades == 3


def test_build_rules_unknown_rule_or_param_or_bad_value_is_clear(tmp_path):
    with pytest.raises(ConfigError, match="unknown rule 'nope'"):
        build_rules({"nope": {}})
    with pytest.raises(ConfigError, match="no parameter"):
        build_rules({"self_trade": {"bogus": 1}})
    with pytest.raises(ConfigError, match="The 'min_trades' parameter of SelfTradeParams must be an int"):
        build_rules({"self_trade": {"min_trades": 0}})
    bad = tmp_path / "bad.toml"
    bad.write_text("[self_trade\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(bad)


def test_build_rules_disabled_rule_is_left_out():
    names = [r.name for r in build_rules({"disabled": {"rules": ["self_trade"]}})]
    assert "self_trade" not in names


def test_per_asset_params_apply_only_to_that_asset():
    from market_surveillance.io.canonical import from_arrow
    from market_surveillance.testing import trades

    t = trades(
        [
            {"ts": 0, "asset": "BTC-USD", "buyer_id": "a", "seller_id": "a"},
            {"ts": 0, "asset": "PUMP-USD", "buyer_id": "b", "seller_id": "b"},
        ]
    )
    _, tables, _ = from_arrow({"trades": t})
    rule = SelfTrade(SelfTradeParams(), {"PUMP-USD": SelfTradeParams(min_trades=2)})
    out = rule.run(tables)
    assert out.column("asset").to_pylist() == ["BTC-USD"]

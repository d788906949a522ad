"""Rule thresholds from a TOML file, overriding any param globally or per asset.

```toml
[extreme_price_move]
sigma = 5.0

[extreme_price_move.assets."PUMP-USD"]
sigma = 6.0

[disabled]
rules = ["ping_pong"]
```
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from market_surveillance.rules.base import Rule
from market_surveillance.rules.registry import all_rules, get_rule


class ConfigError(ValueError):
    """The rules config file is malformed or names unknown rules or params."""


def load_config(path: str | Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    path = Path(path)
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: config file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc


def build_rules(config: dict[str, Any] | None = None, *, source: str = "config") -> list[Rule]:
    """Instantiate every enabled registered rule with the config's params applied."""
    config = dict(config or {})
    disabled = set(config.pop("disabled", {}).get("rules", []))
    for key in list(config) + sorted(disabled):
        try:
            get_rule(key)
        except KeyError as exc:
            raise ConfigError(f"{source}: {exc.args[0]}") from exc
    rules: list[Rule] = []
    for cls in all_rules():
        if cls.name in disabled or cls.rule_id in disabled:
            continue
        section = dict(config.get(cls.name, config.get(cls.rule_id, {})))
        per_asset = section.pop("assets", {})
        try:
            params = cls.Params().replace(**section)
            asset_params = {asset: params.replace(**over) for asset, over in per_asset.items()}
        except ValueError as exc:
            raise ConfigError(f"{source}: [{cls.name}] {exc}") from exc
        rules.append(cls(params, asset_params))
    return rules

"""MS013 network_collusion — accounts sharing devices or subnets pushing one asset the same way."""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import ibis.expr.types as ir
import numpy as np
import pyarrow as pa

from market_surveillance.enums import Typology
from market_surveillance.rules import intermediates
from market_surveillance.rules._common import US, alert_rows, with_episodes
from market_surveillance.rules.base import Params, Rule, Tables, param
from market_surveillance.rules.registry import register


@dataclass(frozen=True)
class NetworkCollusionParams(Params):
    window_s: float = param(60.0, low=0.0, closed="neither", doc="trades of the ring within, seconds")
    min_accounts: int = param(3, low=2, doc="distinct accounts of one cluster trading together")
    episode_gap_s: int = param(300, low=1, doc="hits further apart start a new episode, seconds")


def account_clusters(network: ir.Table) -> pa.Table:
    """Connected components of the account graph linked by a shared device or subnet.

    The network table is reference data (one row per account and fingerprint, small next to trades), so it
    is executed once and clustered with scipy; the result goes back to the backend as a memtable.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    net = network.select("account_id", "device_id", "ip_subnet").to_pyarrow()
    accounts, acc_idx = np.unique(
        np.asarray(net["account_id"].to_pylist(), dtype=object), return_inverse=True
    )
    n = len(accounts)
    if n == 0:
        return pa.table(
            {
                "account_id": pa.array([], pa.string()),
                "cluster": pa.array([], pa.string()),
                "cluster_size": pa.array([], pa.int64()),
            }
        )
    rows, cols = [], []
    for key in ("device_id", "ip_subnet"):
        _, k_idx = np.unique(np.asarray(net[key].to_pylist(), dtype=object), return_inverse=True)
        # link every account to the first account seen with the same fingerprint
        order = np.argsort(k_idx, kind="stable")
        ks = k_idx[order]
        first = np.r_[True, ks[1:] != ks[:-1]]
        head = np.maximum.accumulate(np.where(first, np.arange(len(ks)), 0))
        rows.append(acc_idx[order])
        cols.append(acc_idx[order][head])
    r, c = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(len(r)), (r, c)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    sizes = np.bincount(labels)
    # a cluster is named by its smallest account id, so names do not depend on scipy's numbering;
    # np.unique sorted the accounts, so each label's first occurrence is its smallest account
    _, first = np.unique(labels, return_index=True)
    names = accounts[first]
    return pa.table(
        {
            "account_id": pa.array(accounts.tolist(), pa.string()),
            "cluster": pa.array(names[labels].tolist(), pa.string()),
            "cluster_size": pa.array(sizes[labels].astype(np.int64)),
        }
    )


@register
class NetworkCollusion(Rule):
    """Network collusion (account rings).

    What it detects
        Clusters of accounts linked by a shared device fingerprint or IP subnet (connected components of at
        least ``min_accounts`` accounts) in which ``min_accounts`` distinct accounts trade the same asset in the
        same direction within ``window_s`` seconds.
    Why it is abusive
        One person or group operating several accounts to push a price while hiding its size and
        coordination (sybil accounts, pump groups). EU MAR Annex I(1)(a)(i) securing a dominant position
        by collusion; Art. 12(1)(a) transactions giving false signals.
    Known false positives
        Accounts behind one corporate NAT or shared office network following the same public signal; family
        members on one device.
    """

    rule_id = "MS013"
    name = "network_collusion"
    typology = Typology.COLLUSION_RING
    regulatory_name = "EU MAR Art. 12(1)(a) / Annex I(1)(a): collusive trading by linked accounts"
    metric = "ring_accounts"
    threshold_param = "min_accounts"
    Params = NetworkCollusionParams
    requires = ("trades", "network")
    reads = ("account_trades",)
    needs_trade_accounts = True
    lookback = ("window_s",)

    def candidates(self, t: Tables, p: NetworkCollusionParams) -> ir.Table:
        clusters = ibis.memtable(account_clusters(t["network"]))
        clusters = clusters.filter(clusters.cluster_size >= p.min_accounts)
        at = intermediates.get(t, "account_trades")
        ct = at.join(clusters, "account_id")
        win = int(p.window_s * US)
        ct = ct.mutate(_bk=ct.ts_us - ct.ts_us % win)
        other = ct.select(
            o_bk=ct._bk,
            o_cluster=ct.cluster,
            o_asset=ct.asset,
            o_side=ct.side,
            o_us=ct.ts_us,
            o_ts=ct.ts,
            o_acct=ct.account_id,
            o_trade=ct.trade_id,
        )
        # window-sized time buckets bound the self-join (a ring trading all day is not joined with
        # itself quadratically): a trade at most `win` earlier lies in the anchor's bucket or the one before
        ct = ct.mutate(_jk=ct._bk).union(ct.mutate(_jk=ct._bk - win))
        j = ct.join(
            other,
            [
                ct._jk == other.o_bk,
                ct.cluster == other.o_cluster,
                ct.asset == other.o_asset,
                ct.side == other.o_side,
                other.o_us <= ct.ts_us,
                other.o_us >= ct.ts_us - win,
            ],
        )
        per_anchor = j.group_by(["trade_id", "cluster", "asset", "side", "ts_us", "ts"]).aggregate(
            n_acc=j.o_acct.nunique(),
            members=j.o_acct.collect(),
            trade_ids=j.o_trade.collect(),
            first=j.o_ts.min(),
        )
        hits = per_anchor.filter(per_anchor.n_acc >= p.min_accounts)
        hits = with_episodes(hits, ["cluster", "asset", "side"], p.episode_gap_s, tiebreak="trade_id")
        g = hits.group_by(["cluster", "asset", "side", "episode"]).aggregate(
            value=hits.n_acc.max(),
            accounts=hits.members.collect().flatten().unique(),
            window_start=hits.first.min(),
            window_end=hits.ts.max(),
            detected_at=hits.ts.min(),
            evidence_trade_ids=hits.trade_ids.collect().flatten().unique(),
        )
        return alert_rows(
            g,
            accounts=g.accounts,
            value=g.value,
            score=g.value.cast("float64") / p.min_accounts,
            evidence_trade_ids=g.evidence_trade_ids,
        )

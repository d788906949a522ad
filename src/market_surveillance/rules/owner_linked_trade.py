"""MS017 owner_linked_trade — a trade between two accounts of one beneficial owner or one device/subnet."""

from __future__ import annotations

import math
from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from market_surveillance.enums import Typology
from market_surveillance.rules import intermediates
from market_surveillance.rules._common import account_trades, alert_rows, with_episodes
from market_surveillance.rules.base import Params, Rule, Tables, param
from market_surveillance.rules.registry import register

#: how strongly each kind of link ties two accounts to one controller (orders the alerts of a day)
LINK_WEIGHT = {"owner": 1.0, "device": 0.8, "subnet": 0.5}


@dataclass(frozen=True)
class OwnerLinkedTradeParams(Params):
    min_trades: int = param(
        1, low=1, doc="trades between one linked pair on one asset and venue to raise an episode"
    )
    use_owner: bool = param(True, doc="link accounts with the same accounts.owner_id")
    use_device: bool = param(True, doc="link accounts seen on the same device (network.device_id)")
    use_subnet: bool = param(True, doc="link accounts seen on the same IP subnet (network.ip_subnet)")
    max_subnet_accounts: int = param(
        5,
        low=2,
        doc="a subnet shared by more accounts than this is a carrier/corporate NAT, not a link",
    )
    max_chance: float = param(
        0.01,
        low=0.0,
        high=1.0,
        closed="right",
        doc="the pair's crossings on a book must be less likely than this by chance, given each account's "
        "own buy and sell share of that book (1.0: every crossing alerts)",
    )
    burst_s: int = param(
        60, low=1, doc="an account's trades on one side of a book closer than this are one decision, seconds"
    )
    episode_gap_s: int = param(600, low=1, doc="linked trades further apart start a new episode, seconds")


def _pairs(tab: ir.Table, key: str, kind: str) -> ir.Table:
    """Unordered account pairs (``acc_a`` < ``acc_b``) sharing a value of ``key``."""
    tab = tab.filter(tab[key].notnull() & tab.account_id.notnull()).select("account_id", key).distinct()
    other = tab.select(o_acct=tab.account_id, o_key=tab[key])
    j = tab.join(other, [tab[key] == other.o_key, tab.account_id < other.o_acct])
    return j.select(acc_a=j.account_id, acc_b=j.o_acct, kind=ibis.literal(kind), via=j[key].cast("string"))


def linked_pairs(t: Tables, p: OwnerLinkedTradeParams) -> ir.Table | None:
    """Account pairs linked by owner, device or (small) subnet: ``acc_a, acc_b, kind, via``; None if no
    source of links is in the data (no ``owner_id`` column and no ``network`` table)."""
    parts = []
    acc = t.get("accounts")
    if p.use_owner and acc is not None and "owner_id" in acc.columns:
        parts.append(_pairs(acc, "owner_id", "owner"))
    net = t.get("network")
    if net is not None:
        if p.use_device:
            parts.append(_pairs(net, "device_id", "device"))
        if p.use_subnet:
            per = net.select("account_id", "ip_subnet").distinct()
            size = per.group_by("ip_subnet").aggregate(n_acc=per.account_id.count())
            small = size.filter(size.n_acc <= p.max_subnet_accounts).select("ip_subnet")
            parts.append(_pairs(net.semi_join(small, "ip_subnet"), "ip_subnet", "subnet"))
    if not parts:
        return None
    return ibis.union(*parts) if len(parts) > 1 else parts[0]


def _beyond_chance(
    tr: ir.Table, linked: ir.Table, p: OwnerLinkedTradeParams, book_of: ir.Table | None = None
) -> ir.Table:
    """The linked (pair, asset, venue) books whose crossings are unlikely by chance.

    Each buying decision of account ``a`` on a book (its buys, bursts within ``burst_s`` counted once: a
    sliced order sweeping one resting quote is one decision) meets ``b`` as seller with probability
    ``σ_b``, b's share of the book's sells leaving out its trades with ``a``; and symmetrically. The pair
    is expected to cross ``λ = max(c_a^buy σ_b, c_b^sell β_a) + max(c_b^buy σ_a, c_a^sell β_b)`` times;
    the chance of ``k`` or more crossings (``k`` counted in bursts too) is bounded by Chernoff's
    ``exp(−λ) (eλ / k)^k`` for ``k > λ`` (1 otherwise). A market-making desk filled by a sibling desk of
    the same firm crosses about as often as its share of the book predicts; a prearranged trade between
    two accounts that otherwise barely meet cannot be explained so.
    """
    keys = ["acc_a", "acc_b", "asset", "venue"]
    pl = with_episodes(linked, keys, p.burst_s, tiebreak="trade_id")
    pair = pl.group_by(keys).aggregate(
        k=pl.episode.max(),
        n_ab=(pl.buyer_id == pl.acc_a).cast("int64").sum(),
        n_all=pl.count(),
    )
    # every trade of the book (``tr`` may hold only the linked accounts' trades: their legs are all there)
    book_of = tr if book_of is None else book_of
    book = book_of.group_by(["asset", "venue"]).aggregate(n=book_of.count())
    # only the linked accounts' own books matter: window their legs, not every account's
    ends = linked.select(r_acct=linked.acc_a, r_asset=linked.asset, r_venue=linked.venue).union(
        linked.select(r_acct=linked.acc_b, r_asset=linked.asset, r_venue=linked.venue)
    )
    legs = account_trades(tr)
    legs = legs.semi_join(
        ends, [legs.account_id == ends.r_acct, legs.asset == ends.r_asset, legs.venue == ends.r_venue]
    )
    legs = with_episodes(legs, ["account_id", "asset", "venue", "side"], p.burst_s, tiebreak="trade_id")
    per = legs.group_by(["account_id", "asset", "venue"]).aggregate(
        buys=(legs.side == "buy").cast("int64").sum(),
        sells=(legs.side == "sell").cast("int64").sum(),
        c_buy=legs.episode.max(where=legs.side == "buy"),
        c_sell=legs.episode.max(where=legs.side == "sell"),
    )
    x = pair.join(book, ["asset", "venue"])
    for who in ("a", "b"):
        r = per.select(
            r_asset=per.asset,
            r_venue=per.venue,
            r_acct=per.account_id,
            **{f"{c}_{who}": per[c].fill_null(0) for c in ("buys", "sells", "c_buy", "c_sell")},
        )
        x = x.left_join(r, [x.asset == r.r_asset, x.venue == r.r_venue, x[f"acc_{who}"] == r.r_acct])
        x = x.drop("r_asset", "r_venue", "r_acct")
    n_ba = x.n_all - x.n_ab
    nf = ibis.greatest(x.n - x.n_all, 1).cast("float64")
    # shares of the book leaving the pair's own trades out, so a wash trade does not explain itself
    beta_a = (x.buys_a.fill_null(0) - x.n_ab).cast("float64") / nf
    sigma_b = (x.sells_b.fill_null(0) - x.n_ab).cast("float64") / nf
    beta_b = (x.buys_b.fill_null(0) - n_ba).cast("float64") / nf
    sigma_a = (x.sells_a.fill_null(0) - n_ba).cast("float64") / nf
    c = {k: x[k].fill_null(0).cast("float64") for k in ("c_buy_a", "c_sell_a", "c_buy_b", "c_sell_b")}
    lam = ibis.greatest(c["c_buy_a"] * sigma_b, c["c_sell_b"] * beta_a) + ibis.greatest(
        c["c_buy_b"] * sigma_a, c["c_sell_a"] * beta_b
    )
    lam = ibis.greatest(lam, 1e-12)
    k = x.k.cast("float64")
    log_chance = ibis.ifelse(k > lam, -lam + k * (1.0 + lam.ln() - k.ln()), 0.0)
    if p.max_chance <= 0:
        return x.filter(ibis.literal(False)).select(*keys)
    return x.filter(log_chance <= math.log(p.max_chance)).select(*keys)


@register
class OwnerLinkedTrade(Rule):
    """Wash trade between linked accounts (one beneficial owner, device or subnet).

    What it detects
        Trades whose buyer and seller are two different accounts that (a) share an ``owner_id`` in the
        ``accounts`` table (beneficial owner / legal entity), or (b) were seen on the same device, or (c)
        on the same IP subnet, in the ``network`` table; a subnet shared by more than
        ``max_subnet_accounts`` accounts is ignored (mobile-carrier or corporate NAT links strangers).
        One trade is enough (``min_trades``): the commonest real wash trade is a single prearranged
        cross between two accounts of one person. Trades of one linked pair on one asset and venue closer
        than ``episode_gap_s`` are one alert. Value = trades in the episode; score = value × the link's
        weight (owner 1.0, device 0.8, subnet 0.5), so declared common ownership ranks first. Counts,
        not sizes: a single matched trade is abusive at any notional, on any instrument.
    Why it is abusive
        A trade between two accounts of one owner transfers no beneficial ownership: it paints volume and
        prints a price nobody negotiated. Linked accounts on record under different owners (nominee
        accounts) hide exactly that. EU MAR Annex I(1)(a) and Annex II 1(c) "wash trades" (no change in
        beneficial interest); CEA §4c(a) wash sales; accounts under common control are one person for
        the purpose.
    Known false positives
        Internal transfers between one owner's accounts booked as trades (rebalancing between a main
        account and a sub-account, a fund moving inventory between desks): the known false positive, to
        be closed with the transfer's booking reference. Also households or colleagues on one device or a
        small office subnet whose orders happen to meet on a thin book.
    """

    rule_id = "MS017"
    name = "owner_linked_trade"
    typology = Typology.WASH_TRADING
    regulatory_name = "EU MAR Annex I(1)(a): wash trades (no change in beneficial ownership)"
    metric = "linked_trades"
    threshold_param = "min_trades"
    Params = OwnerLinkedTradeParams
    requires = ("trades",)
    # online: norms are taken over the data in view, a day (issue 13); narrow it where the rule allows
    lookback = (86_400,)
    needs_trade_accounts = True

    def candidates(self, t: Tables, p: OwnerLinkedTradeParams) -> ir.Table:
        tr = t["trades"]
        links = linked_pairs(t, p)
        if links is None:
            links = ibis.memtable(
                {"acc_a": [], "acc_b": [], "kind": [], "via": []},
                schema={"acc_a": "string", "acc_b": "string", "kind": "string", "via": "string"},
            )
        weight = ibis.cases(*((links.kind == k, w) for k, w in LINK_WEIGHT.items()), else_=0.0)
        links = links.mutate(w=weight)
        # one row per linked pair: its strongest link names it
        lw = ibis.window(group_by=[links.acc_a, links.acc_b], order_by=[links.w.desc(), links.via])
        links = links.mutate(rk=ibis.row_number().over(lw))
        links = links.filter(links.rk == 0).drop("rk")
        raw = tr
        tr = tr.filter(tr.buyer_id.notnull() & tr.seller_id.notnull() & (tr.buyer_id != tr.seller_id))
        # the same rows (a null id makes the comparison null), written apart so that the engine scans the
        # table for the book counts instead of materialising the filtered day for every reader
        book_of = raw.filter(raw.buyer_id != raw.seller_id)
        keys = ["acc_a", "acc_b", "asset", "venue"]

        def pair(x: ir.Table) -> ir.Table:
            return x.mutate(
                acc_a=ibis.least(x.buyer_id, x.seller_id), acc_b=ibis.greatest(x.buyer_id, x.seller_id)
            )

        since = intermediates.decide_from(t)
        if since is not None:
            # online: a pair without a linked trade since then has nothing left to decide (an episode's
            # decision is its last trade). The others' books are still judged on the whole view, but only
            # their accounts' trades are read past the book counts: the day's other trades never are
            new = raw.filter((raw.ts_us >= since) & (raw.buyer_id != raw.seller_id))
            recent = pair(new).join(links, ["acc_a", "acc_b"]).select(*keys)
            ids = recent.select(acct=recent.acc_a).union(recent.select(acct=recent.acc_b))
            tr = tr.filter(tr.buyer_id.isin(ids.acct) | tr.seller_id.isin(ids.acct))
        tr = pair(tr)
        j = tr.join(links, ["acc_a", "acc_b"])
        if since is not None:
            j = j.semi_join(recent.distinct(), keys)
        j = j.semi_join(_beyond_chance(tr, j, p, book_of), keys)
        j = with_episodes(j, keys, p.episode_gap_s, tiebreak="trade_id")
        g = j.group_by([*keys, "episode"]).aggregate(
            n=j.count(),
            kind=j.kind.max(),
            via=j.via.max(),
            w=j.w.max(),
            notional=(j.price * j.qty).sum(),
            window_start=j.ts.min(),
            window_end=j.ts.max(),
            evidence_trade_ids=j.trade_id.collect(),
        )
        g = g.filter(g.n >= p.min_trades)
        return alert_rows(
            g,
            venue=g.venue,
            accounts=ibis.array([g.acc_a, g.acc_b]),
            value=g.n,
            score=g.n.cast("float64") * g.w,
            evidence_trade_ids=g.evidence_trade_ids,
            explanation=g.n.cast("string")
            + " trade(s), notional "
            + g.notional.round(2).cast("string")
            + ", between accounts linked by "
            + g.kind
            + " "
            + g.via,
        )

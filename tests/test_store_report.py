"""STOR export of a case (`cases report`): template fields, evidence frozen into the store, exact
reproduction from the store, audit of every generation. SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from market_surveillance.cli import app
from market_surveillance.store import Store
from market_surveillance.store.report import build_report, load_entity, write_report

runner = CliRunner()

ENTITY = """
regime = "MiCA"
competent_authority = "BaFin"
[entity]
name = "Example Exchange GmbH"
lei = "5299000EXAMPLE000001"
address = "Musterstrasse 1, 10115 Berlin, Germany"
acting_capacity = "operating a trading platform for crypto-assets"
[person]
name = "Alice Analyst"
position = "Head of market surveillance"
email = "surveillance@example.com"
[assets."BTC-USD"]
name = "Bitcoin"
dti = "4H95J0R2X"
"""


@pytest.fixture
def entity(tmp_path: Path) -> Path:
    p = tmp_path / "entity.toml"
    p.write_text(ENTITY)
    return p


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A canonical folder holding the evidence trades T0..T9 of the fake alerts and their accounts."""
    d = tmp_path / "data"
    d.mkdir()
    t0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    n = 10
    trades = pa.table(
        {
            "trade_id": [f"T{i}" for i in range(n)],
            "ts": pa.array(
                [t0 + dt.timedelta(seconds=30 * i) for i in range(n)], pa.timestamp("us", tz="UTC")
            ),
            "venue": ["alpha"] * n,
            "asset": ["BTC-USD"] * n,
            "price": [100.0 + i for i in range(n)],
            "qty": [0.5 + i / 10 for i in range(n)],
            "buyer_id": [f"acc{i % 7}" for i in range(n)],
            "seller_id": [f"acc{(i + 1) % 7}" for i in range(n)],
            "aggressor": ["buy" if i % 2 else "sell" for i in range(n)],
        }
    )
    pq.write_table(trades, d / "trades.parquet")
    accounts = pa.table({"account_id": [f"acc{i}" for i in range(7)], "segment": ["retail"] * 7})
    pq.write_table(accounts, d / "accounts.parquet")
    return d


@pytest.fixture
def case(store_url, make_alerts):
    with Store.open(store_url) as s:
        s.record_run(make_alerts(6), data_source="d", config_hash="h")
        cid = s.open_case("wash ring", ["MS001-000001", "MS001-000002"], "alice")
        s.comment(cid, "acc1 and acc2 trade only with each other, same device", "alice")
        s.set_status(cid, "investigating", "alice")
    return store_url, cid


def _na_without_reason(node, path="") -> list[str]:
    bad = []
    if isinstance(node, dict):
        is_na = node.get("value") == "NA"
        if is_na and not str(node.get("reason", "")).strip():
            bad.append(path)
        for k, v in node.items():
            if not (is_na and k in ("value", "reason")):
                bad += _na_without_reason(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            bad += _na_without_reason(v, f"{path}[{i}]")
    elif node in ("NA", "", None) and re.search(r"(value|full_name|identifier|type|date)$", path):
        bad.append(path)
    return bad


def test_report_every_format_reproduces_exactly_and_every_generation_is_audited(
    case, entity, data_dir, tmp_path
):
    url, cid = case
    submitter = load_entity(entity)
    with Store.open(url) as s:
        write_report(
            s, cid, tmp_path / "first.json", "json", submitter=submitter, actor="alice", data_dir=data_dir
        )
        for fmt in ("json", "html", "pdf"):
            a, b = tmp_path / f"a.{fmt}", tmp_path / f"b.{fmt}"
            da = write_report(s, cid, a, fmt, submitter=submitter, actor="alice")
            # freezing again finds nothing new: the report does not change
            db_ = write_report(s, cid, b, fmt, submitter=submitter, actor="bob", data_dir=data_dir)
            assert a.read_bytes() == b.read_bytes(), fmt
            assert da == db_ == hashlib.sha256(a.read_bytes()).hexdigest()
        assert (tmp_path / "first.json").read_bytes() == (tmp_path / "a.json").read_bytes()
        events = s.history(cid)
    reports = [e for e in events if e.action == "report"]
    assert len(reports) == 7
    assert reports[-1].actor == "bob" and reports[-1].new.startswith("pdf sha256:")
    assert [e.action for e in events].count("evidence") == 1


def test_report_template_fields_filled_or_na_with_reason(case, entity, data_dir, tmp_path):
    url, cid = case
    with Store.open(url) as s:
        from market_surveillance.store.report import attach_evidence

        added = attach_evidence(s, cid, data_dir, "alice")
        assert added == {"trade": 3, "order_event": 0, "account": 3}
        doc = build_report(s, cid, load_entity(entity))
    body = json.loads(json.dumps({k: v for k, v in doc.items() if not k.startswith("_")}))
    assert _na_without_reason(body) == []
    s1 = body["section_1_submitting_entity"]
    assert {f["field"]: f["value"] for f in s1["entity"]}["name"] == "Example Exchange GmbH"
    assert {f["field"]: f.get("reason") for f in s1["person"]}["phone"].startswith("not set in [person]")
    assert s1["competent_authority"] == "BaFin"
    s2 = body["section_2_transactions_and_orders"]
    btc = next(i for i in s2["instruments"] if i["asset"] == "BTC-USD")
    assert btc["identifier"] == "4H95J0R2X" and btc["venues"] == ["alpha"]
    eth = next(i for i in s2["instruments"] if i["asset"] == "ETH-USD")
    assert eth["identifier"]["value"] == "NA" and "ETH-USD" in eth["identifier"]["reason"]
    assert [t["trade_id"] for t in s2["transactions"]] == ["T1", "T2", "T3"]
    t1 = s2["transactions"][0]
    assert (t1["price"], t1["qty"], t1["buyer_id"], t1["seller_id"], t1["venue"]) == (
        101.0,
        0.6,
        "acc1",
        "acc2",
        "alpha",
    )
    assert s2["orders"]["value"] == "NA" and "no orders" in s2["orders"]["reason"]
    s3 = body["section_3_nature_of_suspicion"]
    assert s3["suspected_behaviour"][0]["typology"] == "wash_trading"
    assert s3["suspected_behaviour"][0]["regulatory_name"]  # EU MAR Annex I name from the rule registry
    assert {r["alert_id"] for r in s3["reasons_for_suspicion"]} == {"MS001-000001", "MS001-000002"}
    persons = {p["account_id"]: p for p in body["section_4_suspected_persons"]}
    assert set(persons) == {"acc1", "acc2", "acc3"}
    assert persons["acc1"]["profile"]["segment"] == "retail"
    assert "client records" in persons["acc1"]["identity"]["reason"]
    s5 = body["section_5_additional_information"]
    assert s5["analysis"][0]["text"] == "acc1 and acc2 trade only with each other, same device"
    assert s5["verdicts"]["value"] == "NA"  # not closed yet
    charts = body["section_6_documentation_attached"]["charts"]
    assert [c["alert_id"] for c in charts] == ["MS001-000001", "MS001-000002"]


def test_report_without_frozen_evidence_says_how_to_attach_it(case, entity):
    url, cid = case
    with Store.open(url) as s:
        doc = build_report(s, cid, load_entity(entity))
    tx = doc["section_2_transactions_and_orders"]["transactions"]
    assert tx["value"] == "NA" and "--data" in tx["reason"]
    assert doc["section_6_documentation_attached"]["charts"]["value"] == "NA"


def test_report_pdf_and_html_carry_the_sections_and_a_chart(case, entity, data_dir, tmp_path):
    url, cid = case
    with Store.open(url) as s:
        write_report(
            s, cid, tmp_path / "r.pdf", "pdf", submitter=load_entity(entity), actor="a", data_dir=data_dir
        )
        write_report(s, cid, tmp_path / "r.html", "html", submitter=load_entity(entity), actor="a")
    pdf = (tmp_path / "r.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    # the end-of-line before `endstream` is "\n" (a "\r" before it may be the stream's own last byte), and a
    # decompressor object ignores what follows the deflate data
    streams = b"".join(
        zlib.decompressobj().decompress(m.group(1))
        for m in re.finditer(rb"stream\r?\n(.*?)\nendstream", pdf, re.S)
    )
    for text in (b"Section 1", b"Section 6", b"Example Exchange GmbH", b"same device"):
        assert text in streams, text
    page = (tmp_path / "r.html").read_text()
    assert page.count("<h2>Section ") == 6 and "<svg" in page and "<polyline" in page
    assert "NA (not set in [person]" in page


def test_cli_report_needs_entity_and_known_format_and_writes_the_file(case, entity, tmp_path):
    url, cid = case
    out = tmp_path / "stor.html"
    env = {"COLUMNS": "80", "MS_STOR_ENTITY": None}
    r = runner.invoke(app, ["cases", "report", cid, "--out", str(out), "--db", url, "--actor", "a"], env=env)
    assert r.exit_code == 2 and "--entity" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = runner.invoke(
        app,
        ["cases", "report", cid, "--out", str(tmp_path / "x.doc"), "--entity", str(entity), "--db", url],
        env=env,
    )
    assert r.exit_code == 2 and "json | html | pdf" in r.stderr
    r = runner.invoke(
        app,
        ["cases", "report", cid, "--out", str(out), "--entity", str(entity), "--db", url, "--actor", "a"],
        env=env,
    )
    assert r.exit_code == 0, r.output
    assert out.read_text().startswith("<!DOCTYPE html>") and r.stdout == ""
    r = runner.invoke(
        app,
        [
            "cases",
            "report",
            "C-nope",
            "--out",
            str(out),
            "--entity",
            str(entity),
            "--db",
            url,
            "--actor",
            "a",
        ],
        env=env,
    )
    assert r.exit_code == 2 and "C-nope" in r.stderr

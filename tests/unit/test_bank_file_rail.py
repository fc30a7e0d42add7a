"""The bank file rail: pain.001 files out (validated against the ISO XSD), pain.002 back."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import xmlschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tally.adapters.payouts.bank_file import (
    BankFileInvalid,
    BankFileRail,
    BankFileRefused,
    Debtor,
    build_pain001,
    pain001_xsd_path,
    pain002_xsd_path,
)
from tally.adapters.payouts.iso20022 import NS_001, amount_minor, amount_text, end_to_end_id
from tally.adapters.payouts.iso20022 import StatusReportError as Refused
from tally.kernel.clock import FixedClock
from tally.payouts.rails import PayoutInstruction, RailAnswer, RailOutcome
from tally.simulation.bank import Block, Tx, answer_file, status_report

NOW = datetime(2026, 12, 7, 23, 0, tzinfo=UTC)
DEBTOR = Debtor("Tally Operations GmbH", "DE89370400440532013000", "COBADEFFXXX")
C, R, S, U = RailOutcome.CONFIRMED, RailOutcome.REJECTED, RailOutcome.SUBMITTED, RailOutcome.UNKNOWN


def pay(
    payout_id: str,
    amount: int,
    currency: str = "EUR",
    account: str = "DE02120300000000202051",
    bic: str = "BYLADEM1001",
    run: str = "run-1",
    name: str = "Müller Spiele GmbH",
) -> PayoutInstruction:
    return PayoutInstruction(
        payout_id,
        f"key-{payout_id}",
        run,
        "provider:" + payout_id,
        name,
        account,
        bic,
        amount,
        currency,
        f"Fees November {payout_id}",
    )


def q(path: str) -> str:
    return "/".join(f"{{{NS_001}}}{part}" for part in path.split("/"))


def official_errors(content: bytes) -> list[str]:
    """The test's own check against the official XSD, independent of the rail's."""
    schema = xmlschema.XMLSchema(str(pain001_xsd_path()))
    return [str(e.reason) for e in schema.iter_errors(content.decode())]


def rail_in(tmp_path: Path, **options: object) -> BankFileRail:
    return BankFileRail(
        tmp_path,
        DEBTOR,
        FixedClock(NOW),
        currencies=("EUR", "GBP", "JPY", "KWD", "USDT"),
        **options,  # type: ignore[arg-type]
    )


def test_a_sepa_file_validates_against_the_iso_xsd_with_exact_amounts() -> None:
    built = build_pain001(
        "run-1",
        [pay("p-1", 123_456), pay("p-2", 5, account="FR1420041010050500013M02606", bic="")],
        DEBTOR,
        NOW,
        date(2026, 12, 8),
    )
    assert official_errors(built.content) == []
    root = ET.fromstring(built.content)
    assert root.findtext(q("CstmrCdtTrfInitn/GrpHdr/NbOfTxs")) == "2"
    assert root.findtext(q("CstmrCdtTrfInitn/GrpHdr/CtrlSum")) == "1234.61"
    assert root.findtext(q("CstmrCdtTrfInitn/GrpHdr/MsgId")) == built.message_id
    (block,) = root.findall(q("CstmrCdtTrfInitn/PmtInf"))
    assert block.findtext(q("PmtTpInf/SvcLvl/Cd")) == "SEPA"
    assert block.findtext(q("ChrgBr")) == "SLEV"
    amounts = [a.text for a in block.iter(q("InstdAmt"))]
    assert amounts == ["1234.56", "0.05"]
    assert [n.text for n in block.iter(q("EndToEndId"))] == ["p-1", "p-2"]
    # sepaxml transliterates names to the SEPA character set.
    assert block.findtext(q("CdtTrfTxInf/Cdtr/Nm")) == "Muller Spiele GmbH"


def test_cross_border_blocks_carry_each_currencys_exponent_and_validate() -> None:
    built = build_pain001(
        "run-x",
        [
            pay("gbp", 999, "GBP", "GB33BUKB20201555555555", "BUKBGB22"),
            pay("jpy", 1_000_000, "JPY", "12345678", "MHCBJPJTXXX"),
            pay("kwd", 1_234_567, "KWD", "KW81CBKU0000000000001234560101", "CBKUKWKWXXX"),
        ],
        DEBTOR,
        NOW,
        date(2026, 12, 8),
    )
    assert official_errors(built.content) == []
    root = ET.fromstring(built.content)
    blocks = root.findall(q("CstmrCdtTrfInitn/PmtInf"))
    assert [b.findtext(q("ChrgBr")) for b in blocks] == ["SHAR", "SHAR", "SHAR"]
    assert all(b.find(q("PmtTpInf")) is None for b in blocks)  # no SEPA service level
    got = {a.get("Ccy"): a.text for a in root.iter(q("InstdAmt"))}
    assert got == {"GBP": "9.99", "JPY": "1000000", "KWD": "1234.567"}
    assert (
        root.findtext(q("CstmrCdtTrfInitn/GrpHdr/CtrlSum")) == "1001244.557"
    )  # 9.99 + 1000000 + 1234.567
    jpy = next(b for b in blocks if b.findtext(q("CdtTrfTxInf/Amt/InstdAmt")) == "1000000")
    assert jpy.findtext(q("CdtTrfTxInf/CdtrAcct/Id/Othr/Id")) == "12345678"


def test_eur_to_an_account_outside_the_sepa_zone_goes_cross_border() -> None:
    built = build_pain001(
        "run-1", [pay("p-1", 100, "EUR", "12345678", "CITIUS33XXX")], DEBTOR, NOW, date(2026, 12, 8)
    )
    root = ET.fromstring(built.content)
    assert root.findtext(q("CstmrCdtTrfInitn/PmtInf/ChrgBr")) == "SHAR"
    assert official_errors(built.content) == []


def test_a_bad_iban_is_refused_naming_the_payout() -> None:
    with pytest.raises(BankFileRefused, match=r"payout 'p-bad'.*IBAN 'DE89370400440532013001'"):
        build_pain001(
            "run-1",
            [pay("p-ok", 100), pay("p-bad", 100, account="DE89370400440532013001")],
            DEBTOR,
            NOW,
            date(2026, 12, 8),
        )


def test_a_bad_bic_is_refused_naming_the_payout() -> None:
    with pytest.raises(BankFileRefused, match=r"payout 'p-bic'.*BIC 'DEUTXXFF'"):
        build_pain001("run-1", [pay("p-bic", 100, bic="DEUTXXFF")], DEBTOR, NOW, date(2026, 12, 8))


def test_a_cross_border_payment_without_a_bic_is_refused() -> None:
    with pytest.raises(BankFileRefused, match=r"payout 'gbp'.*needs the BIC"):
        build_pain001(
            "run-1",
            [pay("gbp", 100, "GBP", "GB33BUKB20201555555555", "")],
            DEBTOR,
            NOW,
            date(2026, 12, 8),
        )


def test_a_file_that_fails_the_xsd_is_never_released(tmp_path: Path) -> None:
    # USDT has four letters: ISO 20022's currency code pattern refuses it.
    rail = rail_in(tmp_path)
    with pytest.raises(BankFileInvalid, match="failed the XSD and was not released"):
        rail.submit([pay("usdt", 100, "USDT", "GB33BUKB20201555555555", "BUKBGB22")])
    assert list((tmp_path / "outbox").glob("*")) == []
    assert list((tmp_path / "released").glob("*")) == []
    assert rail.status(pay("usdt", 100, "USDT")).outcome is U


def test_submit_writes_one_file_into_the_outbox_and_answers_submitted(tmp_path: Path) -> None:
    rail = rail_in(tmp_path)
    batch = [pay("p-1", 1000), pay("p-2", 2000), pay("p-bad", 5, account="DE00123")]
    answers = rail.submit(batch)
    assert [a.outcome for a in answers] == [S, S, R]
    assert "payout 'p-bad'" in answers[2].reason and "IBAN" in answers[2].reason
    files = sorted((tmp_path / "outbox").iterdir())
    assert [f.name for f in files] == [f"{answers[0].rail_reference}.xml"]  # no temp left
    assert official_errors(files[0].read_bytes()) == []
    assert files[0].read_bytes().count(b"<CdtTrfTxInf>") == 2
    # A resubmission (after a crash) is the same file, not a second one.
    again = rail.submit(batch[:2])
    assert [a.outcome for a in again] == [S, S]
    assert len(list((tmp_path / "outbox").iterdir())) == 1
    # No status report yet: the rail does not know.
    assert rail.status(batch[0]).outcome is U


def _released(tmp_path: Path) -> tuple[BankFileRail, list[PayoutInstruction], str, list[str]]:
    rail = rail_in(tmp_path)
    batch = [pay(f"p-{i}", 1000 + i) for i in range(5)] + [
        pay("gbp", 500, "GBP", "GB33BUKB20201555555555", "BUKBGB22")
    ]
    answers = rail.submit(batch)
    msg_id = answers[0].rail_reference
    root = ET.fromstring((tmp_path / "outbox" / f"{msg_id}.xml").read_bytes())
    blocks = [b.text or "" for b in root.iter(q("PmtInfId"))]
    return rail, batch, msg_id, blocks


def test_a_mixed_pain002_yields_exactly_its_accepted_and_rejected_lines(tmp_path: Path) -> None:
    rail, batch, msg_id, (sepa, gbp) = _released(tmp_path)
    report = status_report(
        msg_id,
        group_code="PART",
        blocks=[
            Block(
                sepa,
                "PART",
                txs=[
                    Tx("p-0", "ACSC", bank_ref="B-0"),
                    Tx("p-1", "RJCT", "AC01", "account number invalid"),
                    Tx("p-2", "ACSP"),
                    Tx("p-3", "ACCP"),  # profile checked, funds not yet: still in flight
                    Tx("p-4", "RJCT", "AM04"),
                ],
            ),
            Block(gbp, "ACWC"),  # the whole GBP block accepted with a change of date
        ],
    )
    answers = rail.read_status_report(report, run_id="run-1")
    assert sorted(answers, key=lambda a: a.payout_id) == [
        RailAnswer("gbp", C),
        RailAnswer("p-0", C, "B-0"),
        RailAnswer("p-1", R, "", "AC01: account number invalid"),
        RailAnswer("p-2", C),
        RailAnswer("p-3", S),
        RailAnswer("p-4", R, "", "AM04"),
    ]
    assert [rail.status(i).outcome for i in batch] == [C, R, C, S, R, C]


def test_a_group_rejection_without_lines_rejects_every_payment(tmp_path: Path) -> None:
    rail, batch, msg_id, _ = _released(tmp_path)
    answers = rail.read_status_report(status_report(msg_id, group_code="RJCT", group_reason="FF01"))
    assert {a.payout_id: (a.outcome, a.reason) for a in answers} == {
        i.payout_id: (R, "FF01") for i in batch
    }


def test_a_payment_a_partial_report_does_not_name_gets_no_answer(tmp_path: Path) -> None:
    rail, batch, msg_id, (sepa, _) = _released(tmp_path)
    answers = rail.read_status_report(
        status_report(msg_id, group_code="PART", blocks=[Block(sepa, txs=[Tx("p-0", "RJCT")])])
    )
    assert answers == [RailAnswer("p-0", R, "", "RJCT")]
    assert rail.status(batch[1]).outcome is U


def test_a_later_received_does_not_undo_a_final_status(tmp_path: Path) -> None:
    rail, batch, msg_id, _ = _released(tmp_path)
    rail.read_status_report(status_report(msg_id, report_id="R1", group_code="ACSC"))
    rail.read_status_report(status_report(msg_id, report_id="R2", group_code="ACTC"))
    assert rail.status(batch[0]).outcome is C


def test_a_pain002_for_another_run_is_refused_and_nothing_applied(tmp_path: Path) -> None:
    rail, batch, msg_id, _ = _released(tmp_path)
    with pytest.raises(Refused, match=r"answers the file of run 'run-1', not of run 'run-2'"):
        rail.read_status_report(status_report(msg_id, group_code="ACSC"), run_id="run-2")
    with pytest.raises(Refused, match=r"answers message 'TLYSOMEOTHERFILE'.*never released"):
        rail.read_status_report(status_report("TLYSOMEOTHERFILE", group_code="ACSC"))
    assert rail.status(batch[0]).outcome is U
    assert not (tmp_path / "reports").exists()


def test_a_pain002_naming_an_unknown_payout_is_refused_whole(tmp_path: Path) -> None:
    rail, batch, msg_id, (sepa, _) = _released(tmp_path)
    report = status_report(
        msg_id, blocks=[Block(sepa, txs=[Tx("p-0", "ACSC"), Tx("p-999", "ACSC")])]
    )
    with pytest.raises(Refused, match=r"names payment 'p-999'"):
        rail.read_status_report(report)
    assert rail.status(batch[0]).outcome is U


def test_a_pain002_that_fails_its_xsd_or_is_not_xml_is_refused(tmp_path: Path) -> None:
    rail, _, msg_id, _ = _released(tmp_path)
    bad_code = status_report(msg_id, group_code="PAID")
    with pytest.raises(Refused, match=r"fails the pain\.002\.001\.03 XSD"):
        rail.read_status_report(bad_code)
    with pytest.raises(Refused):
        rail.read_status_report(b"<Document><unclosed></Document>")
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><d>&b;</d>'
    )
    with pytest.raises(Refused):
        rail.read_status_report(bomb)


def test_an_oversized_pain002_is_refused_before_it_is_read(tmp_path: Path) -> None:
    from tally.kernel.limits import RailLimits

    rail = rail_in(tmp_path, limits=RailLimits(status_report_max_bytes=100))
    with pytest.raises(Refused, match="over the limit of 100"):
        rail.read_status_report(b" " * 101)


def test_the_pain002_xsd_comes_from_an_installed_package() -> None:
    assert pain002_xsd_path().is_file()
    assert "pain.002.001.03" in pain002_xsd_path().read_text(encoding="utf-8")[:1000]


def test_a_restarted_rail_knows_its_files_and_reports(tmp_path: Path) -> None:
    rail, batch, msg_id, (sepa, _) = _released(tmp_path)
    rail.read_status_report(
        status_report(msg_id, blocks=[Block(sepa, txs=[Tx("p-0", "ACSC"), Tx("p-1", "RJCT")])])
    )
    again = rail_in(tmp_path)
    assert [again.status(i).outcome for i in batch[:3]] == [C, R, U]
    assert again.submit(batch[2:3])[0] == RailAnswer("p-2", S, msg_id)
    assert len(list((tmp_path / "outbox").iterdir())) == 1


def test_narrowed_paid_codes_confirm_only_on_settlement(tmp_path: Path) -> None:
    rail = rail_in(tmp_path, paid_codes=frozenset({"ACSC"}))
    (answer,) = rail.submit([pay("p-0", 100)])
    root = ET.fromstring((tmp_path / "outbox" / f"{answer.rail_reference}.xml").read_bytes())
    block = root.findtext(q("CstmrCdtTrfInitn/PmtInf/PmtInfId")) or ""
    got = rail.read_status_report(
        status_report(answer.rail_reference, blocks=[Block(block, txs=[Tx("p-0", "ACSP")])])
    )
    assert got == [RailAnswer("p-0", S)]


def test_a_long_payout_id_travels_under_a_digest_and_maps_back(tmp_path: Path) -> None:
    long_id = "payout-" + "x" * 60
    rail = rail_in(tmp_path)
    (answer,) = rail.submit([pay(long_id, 100)])
    e2e = end_to_end_id(long_id)
    assert len(e2e) == 35 and e2e != long_id
    content = (tmp_path / "outbox" / f"{answer.rail_reference}.xml").read_bytes()
    block = ET.fromstring(content).findtext(q("CstmrCdtTrfInitn/PmtInf/PmtInfId")) or ""
    got = rail.read_status_report(
        status_report(answer.rail_reference, blocks=[Block(block, txs=[Tx(e2e, "ACSC")])])
    )
    assert got == [RailAnswer(long_id, C)]


# -- amounts: exact, both ways ----------------------------------------------------------

CURRENCIES = ("EUR", "GBP", "JPY", "KWD", "CHF", "BTC")  # exponents 2, 2, 0, 3, 2, 8
ACCOUNTS = {
    "EUR": ("DE02120300000000202051", "BYLADEM1001"),
    "GBP": ("GB33BUKB20201555555555", "BUKBGB22"),
    "JPY": ("12345678", "MHCBJPJTXXX"),
    "KWD": ("KW81CBKU0000000000001234560101", "CBKUKWKWXXX"),
    "CHF": ("CH9300762011623852957", "UBSWCHZH80A"),
    "BTC": ("wallet-1", "BUKBGB22"),
}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.sampled_from(CURRENCIES[:5]), st.integers(1, 10**13)), min_size=1, max_size=12
    )
)
def test_amounts_round_trip_exactly_and_lines_add_up_to_the_control_sum(
    lines: list[tuple[str, int]],
) -> None:
    batch = [
        pay(f"p-{n}", amount, currency, *ACCOUNTS[currency])
        for n, (currency, amount) in enumerate(lines)
    ]
    built = build_pain001("run-h", batch, DEBTOR, NOW, date(2026, 12, 8))
    root = ET.fromstring(built.content)
    back: dict[str, int] = {}
    total = Decimal(0)
    for tx in root.iter(q("CdtTrfTxInf")):
        amount = tx.find(q("Amt/InstdAmt"))
        assert amount is not None and amount.text is not None
        back[tx.findtext(q("PmtId/EndToEndId")) or ""] = amount_minor(
            amount.text, amount.get("Ccy", "")
        )
        total += Decimal(amount.text)
    assert back == {i.payout_id: i.amount_minor for i in batch}
    assert Decimal(root.findtext(q("CstmrCdtTrfInitn/GrpHdr/CtrlSum")) or "") == total
    for block in root.iter(q("PmtInf")):
        block_total = sum((Decimal(a.text or "") for a in block.iter(q("InstdAmt"))), Decimal(0))
        assert Decimal(block.findtext(q("CtrlSum")) or "") == block_total


@given(st.sampled_from(("EUR", "JPY", "KWD", "BTC", "ETH")), st.integers(-(10**20), 10**20))
def test_amount_text_and_back_is_the_identity(currency: str, minor: int) -> None:
    assert amount_minor(amount_text(minor, currency), currency) == minor


def test_amount_text_refuses_precision_the_currency_does_not_have() -> None:
    assert amount_text(5, "EUR") == "0.05" and amount_text(5, "JPY") == "5"
    assert amount_text(1, "KWD") == "0.001"
    with pytest.raises(ValueError, match="more decimals than JPY"):
        amount_minor("1.5", "JPY")


def test_the_fake_banks_answer_posts_and_voids_exactly_the_lines_it_names(tmp_path: Path) -> None:
    rail = rail_in(tmp_path)
    batch = [pay(f"p-{n}", 100 + n) for n in range(40)] + [
        pay("gbp", 7, "GBP", "GB33BUKB20201555555555", "BUKBGB22")
    ]
    (first, *_) = rail.submit(batch)
    released = (tmp_path / "outbox" / f"{first.rail_reference}.xml").read_bytes()
    report = answer_file(released, seed=3, reject_share=0.3)
    rejected_lines = {
        tx.findtext("{urn:iso:std:iso:20022:tech:xsd:pain.002.001.03}OrgnlEndToEndId")
        for tx in ET.fromstring(report).iter(
            "{urn:iso:std:iso:20022:tech:xsd:pain.002.001.03}TxInfAndSts"
        )
        if tx.findtext("{urn:iso:std:iso:20022:tech:xsd:pain.002.001.03}TxSts") == "RJCT"
    }
    assert 0 < len(rejected_lines) < len(batch)
    answers = {a.payout_id: a for a in rail.read_status_report(report, run_id="run-1")}
    assert set(answers) == {i.payout_id for i in batch}
    assert {p for p, a in answers.items() if a.outcome is R} == rejected_lines
    assert {p for p, a in answers.items() if a.outcome is C} == (
        {i.payout_id for i in batch} - rejected_lines
    )
    assert all(
        a.reason in ("AC01", "AC04", "AM04", "MS03") for a in answers.values() if a.outcome is R
    )


# -- pain.002 levels: the most specific status decides ----------------------------------

MEANING = {"ACSC": C, "ACSP": C, "ACWC": C, "ACCP": S, "ACTC": S, "RCVD": S, "PDNG": S, "RJCT": R}
GROUP_CODES = st.sampled_from(["", "PART", "RJCT", "ACSC", "ACTC", "RCVD"])
BLOCK_CODES = st.sampled_from(["", "PART", "RJCT", "ACSP", "ACCP", "PDNG"])
TX_CODES = st.sampled_from(["", "RJCT", "ACSC", "ACCP", "ACTC", "ACWC", "ACSP"])


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    group=GROUP_CODES,
    blocks=st.tuples(BLOCK_CODES, BLOCK_CODES),
    txs=st.lists(TX_CODES, min_size=4, max_size=4),
)
def test_each_payment_gets_its_most_specific_status(
    tmp_path_factory: pytest.TempPathFactory, group: str, blocks: tuple[str, str], txs: list[str]
) -> None:
    rail = rail_in(tmp_path_factory.mktemp("rail"))
    batch = [pay("e1", 100), pay("e2", 200)] + [
        pay(f"g{n}", 300 + n, "GBP", "GB33BUKB20201555555555", "BUKBGB22") for n in (1, 2)
    ]
    (first, *_) = rail.submit(batch)
    content = (rail.outbox / f"{first.rail_reference}.xml").read_bytes()
    block_ids = [b.text or "" for b in ET.fromstring(content).iter(q("PmtInfId"))]
    members = {block_ids[0]: ["e1", "e2"], block_ids[1]: ["g1", "g2"]}
    codes = dict(zip(["e1", "e2", "g1", "g2"], txs, strict=True))
    report = status_report(
        first.rail_reference,
        group_code=group,
        blocks=[
            Block(block_id, code, txs=[Tx(p, codes[p]) for p in members[block_id] if codes[p]])
            for block_id, code in zip(block_ids, blocks, strict=True)
        ],
    )
    got = {a.payout_id: a.outcome for a in rail.read_status_report(report)}
    expected: dict[str, RailOutcome] = {}
    for payouts, block_code in zip(members.values(), blocks, strict=True):
        for p in payouts:
            for code in (codes[p], block_code, group):
                if code and code != "PART":
                    expected[p] = MEANING[code]
                    break
    assert got == expected

"""ISO 20022 rules of the bank file rail, pure: amounts as text, identifiers, and what a
``pain.002`` status code means for a payout (ADR 0022).

No I/O here: :mod:`tally.adapters.payouts.bank_file` builds, validates and reads the
files; this module says what their fields must hold and what their codes mean.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from xml.etree.ElementTree import Element

from tally.kernel.currency import scale_of
from tally.payouts.rails import RailAnswer, RailOutcome

PAIN_001 = "pain.001.001.03"
PAIN_002 = "pain.002.001.03"
NS_001 = f"urn:iso:std:iso:20022:tech:xsd:{PAIN_001}"
NS_002 = f"urn:iso:std:iso:20022:tech:xsd:{PAIN_002}"

# ISO 20022 Max35Text, restricted to the SEPA character set (EPC guidance) so that a
# bank of either scheme carries an identifier unchanged.
ID_MAX = 35
_SEPA_ID = re.compile(r"[A-Za-z0-9/\-?:().,'+]{1,35}")

# What a pain.002 status code (TransactionGroupStatus3Code, TransactionIndividualStatus3Code
# of pain.002.001.03) means for a payout. CONFIRMED posts the reservation, so only codes by
# which the debtor's bank has committed to execute the payment are CONFIRMED:
#   ACSC AcceptedSettlementCompleted: the debtor's account is debited; the payment left.
#   ACSP AcceptedSettlementInProcess: every check (syntax, customer profile, funds) passed
#        and the bank has accepted the payment for execution; settlement is under way. For
#        SEPA credit transfers this is the last positive status most banks send.
#   ACWC AcceptedWithChange: as ACSP, with a change the bank made (an execution date).
# Codes that only say the bank is still looking at it are SUBMITTED (nothing moves):
#   RCVD Received, ACTC AcceptedTechnicalValidation (the file parsed), ACCP
#   AcceptedCustomerProfile (the debtor is allowed to pay; funds not yet checked), PDNG
#   Pending.
# RJCT Rejected is REJECTED (the reservation voids), with the bank's reason code.
# PART PartiallyAccepted (group or payment information level only) decides nothing by
# itself: the transaction lines under it do.
PAID_CODES: frozenset[str] = frozenset({"ACSC", "ACSP", "ACWC"})
PENDING_CODES: frozenset[str] = frozenset({"RCVD", "ACTC", "ACCP", "PDNG"})
REJECTED_CODES: frozenset[str] = frozenset({"RJCT"})
PARTIAL_CODE = "PART"


class StatusReportError(ValueError):
    """A pain.002 that cannot be applied: for another run, naming an unknown payout,
    or not saying what it must. Nothing in it is applied."""


def amount_text(amount_minor: int, currency: str) -> str:
    """Integer minor units as the decimal text an ISO 20022 amount carries, with exactly
    the currency's exponent: ``(1234, "EUR") -> "12.34"``, ``(5, "JPY") -> "5"``."""
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise TypeError("an amount is an int of minor units")
    scale = scale_of(currency)
    sign = "-" if amount_minor < 0 else ""
    digits = str(abs(amount_minor))
    if scale == 0:
        return sign + digits
    digits = digits.rjust(scale + 1, "0")
    return f"{sign}{digits[:-scale]}.{digits[-scale:]}"


def amount_minor(text: str, currency: str) -> int:
    """The inverse of :func:`amount_text`: decimal text to integer minor units, refusing
    more decimals than the currency has (never rounding)."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"amount {text!r} is not a decimal number") from None
    if not value.is_finite():
        raise ValueError(f"amount {text!r} is not a finite number")
    scaled = value.scaleb(scale_of(currency))
    if scaled != scaled.to_integral_value():
        raise ValueError(f"amount {text!r} has more decimals than {currency} allows")
    return int(scaled)


def sum_text(amounts: Iterable[tuple[int, str]]) -> str:
    """A control sum: the exact decimal sum of amounts that may differ in currency (ISO
    20022 adds the numbers as they stand), as plain text without an exponent."""
    total = sum((Decimal(amount_text(minor, currency)) for minor, currency in amounts), Decimal(0))
    return format(total, "f")


def end_to_end_id(payout_id: str) -> str:
    """The EndToEndId a payout travels under: the payout id itself when it fits ISO
    20022's 35 characters and the SEPA character set (so the bank's statement shows it),
    else a digest of it (``H`` + 34 hex digits) that the rail maps back."""
    if _SEPA_ID.fullmatch(payout_id):
        return payout_id
    return "H" + hashlib.sha256(payout_id.encode()).hexdigest()[: ID_MAX - 1]


def message_id(run_id: str, idempotency_keys: Iterable[str]) -> str:
    """A file's MsgId: derived from the run and the payments in it, so that the same
    payments resubmitted (after a crash) give the same file, never a second one."""
    digest = hashlib.sha256(run_id.encode())
    for key in sorted(idempotency_keys):
        digest.update(b"\x00" + key.encode())
    return "TLY" + digest.hexdigest()[: ID_MAX - 3].upper()


# -- pain.002: what a status report says ------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatusLine:
    """One status the report gives: of the whole file (``scope`` "group"), of one
    payment information block ("block", ``ref`` its PmtInfId), or of one payment
    ("payment", ``ref`` its EndToEndId)."""

    scope: str
    ref: str
    code: str
    reason: str
    bank_reference: str = ""


@dataclass(frozen=True, slots=True)
class StatusReport:
    message_id: str  # the report's own MsgId
    original_message_id: str  # the pain.001 it answers (OrgnlMsgId)
    lines: tuple[StatusLine, ...]


def _q(tag: str) -> str:
    return f"{{{NS_002}}}{tag}"


def _text(element: Element | None, path: str) -> str:
    if element is None:
        return ""
    found = element.find("/".join(_q(part) for part in path.split("/")))
    return (found.text or "").strip() if found is not None else ""


def _reason(element: Element) -> str:
    """The first status reason: its code (ISO ExternalStatusReason1Code: AC01 wrong
    account, AM04 insufficient funds, ...) or proprietary text, and its additional
    information, e.g. ``"AC01: account number invalid"``."""
    info = element.find(_q("StsRsnInf"))
    if info is None:
        return ""
    code = _text(info, "Rsn/Cd") or _text(info, "Rsn/Prtry")
    extra = " ".join(
        (node.text or "").strip() for node in info.findall(_q("AddtlInf")) if node.text
    )
    return f"{code}: {extra}" if code and extra else code or extra


def read_status_report(root: Element) -> StatusReport:
    """The statuses a (schema-valid) pain.002.001.03 document gives, at every level."""
    report = root.find(_q("CstmrPmtStsRpt"))
    if report is None:
        raise StatusReportError("not a customer payment status report (CstmrPmtStsRpt)")
    group = report.find(_q("OrgnlGrpInfAndSts"))
    original = _text(group, "OrgnlMsgId")
    if group is None or not original:
        raise StatusReportError("the status report names no original message (OrgnlMsgId)")
    lines: list[StatusLine] = []
    group_code = _text(group, "GrpSts")
    if group_code:
        lines.append(StatusLine("group", original, group_code, _reason(group)))
    for block in report.findall(_q("OrgnlPmtInfAndSts")):
        block_id = _text(block, "OrgnlPmtInfId")
        block_code = _text(block, "PmtInfSts")
        if block_code:
            lines.append(StatusLine("block", block_id, block_code, _reason(block)))
        for tx in block.findall(_q("TxInfAndSts")):
            ref = _text(tx, "OrgnlEndToEndId")
            code = _text(tx, "TxSts")
            if not ref:
                raise StatusReportError(
                    f"a transaction status in block {block_id!r} names no OrgnlEndToEndId"
                )
            if not code:
                continue  # a line that only carries charges or references decides nothing
            bank_ref = _text(tx, "AcctSvcrRef") or _text(tx, "StsId")
            lines.append(StatusLine("payment", ref, code, _reason(tx), bank_ref))
    return StatusReport(_text(report, "GrpHdr/MsgId"), original, tuple(lines))


def outcome_of(code: str, paid_codes: frozenset[str] = PAID_CODES) -> RailOutcome | None:
    """What one status code means for a payout; None for PART (decided below it)."""
    if code in REJECTED_CODES:
        return RailOutcome.REJECTED
    if code in paid_codes:
        return RailOutcome.CONFIRMED
    if code == PARTIAL_CODE:
        return None
    if code in PENDING_CODES or code in PAID_CODES:
        return RailOutcome.SUBMITTED  # a code left out of a narrowed paid_codes waits
    raise StatusReportError(f"unknown status code {code!r}")


@dataclass(frozen=True, slots=True)
class FilePayment:
    """One payment of a released file, as the rail remembers it."""

    payout_id: str
    end_to_end_id: str
    block_id: str


def answers_of(
    report: StatusReport,
    payments: Mapping[str, FilePayment],
    paid_codes: frozenset[str] = PAID_CODES,
) -> list[RailAnswer]:
    """The answer a status report gives for each payment of the file it answers
    (``payments`` by EndToEndId): its own line if it has one, else its block's status,
    else the whole file's; a payment no level decides (under PART) gets no answer.

    A line naming a payment or block the file does not hold refuses the whole report:
    applying the rest would leave the unknown line silently dropped."""
    blocks = {payment.block_id for payment in payments.values()}
    by_payment: dict[str, StatusLine] = {}
    by_block: dict[str, StatusLine] = {}
    group: StatusLine | None = None
    for line in report.lines:
        if line.scope == "payment":
            if line.ref not in payments:
                raise StatusReportError(
                    f"status report {report.message_id!r} names payment {line.ref!r}, "
                    f"which file {report.original_message_id!r} does not hold"
                )
            by_payment[line.ref] = line
        elif line.scope == "block":
            if line.ref not in blocks:
                raise StatusReportError(
                    f"status report {report.message_id!r} names payment block {line.ref!r}, "
                    f"which file {report.original_message_id!r} does not hold"
                )
            by_block[line.ref] = line
        else:
            group = line
    answers: list[RailAnswer] = []
    for ref, payment in payments.items():
        for level in (by_payment.get(ref), by_block.get(payment.block_id), group):
            if level is None:
                continue
            line = level
            outcome = outcome_of(line.code, paid_codes)
            if outcome is None:
                continue  # PART: look one level further (there is none above the group)
            reason = line.reason or (line.code if outcome is RailOutcome.REJECTED else "")
            answers.append(RailAnswer(payment.payout_id, outcome, line.bank_reference, reason))
            break
    return answers

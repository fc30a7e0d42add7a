"""The bank file rail: ISO 20022 ``pain.001`` credit transfer files out, ``pain.002``
status reports back (ADR 0022).

One file per run. SEPA payments (EUR, both accounts IBANs in the SEPA zone) go in one
payment block that ``sepaxml`` builds (service level SEPA, charges shared by level, names
transliterated to the SEPA character set); payments in other currencies, or to accounts
outside the SEPA zone, go in one cross-border block per currency (charges shared, the
creditor's bank named by BIC, the account an IBAN or the bank's own account number).
Amounts are written with each currency's exponent from integer minor units. The whole
file is validated against the ISO pain.001.001.03 XSD that sepaxml ships before it is
released: a file that does not validate is never written (:class:`BankFileInvalid`).

``submit`` writes the file into ``<directory>/outbox`` (temp file, fsync, rename, so the
bank connector never picks up half a file) and keeps the rail's record of it in
``<directory>/released``; it answers SUBMITTED for each payment. ``read_status_report``
reads a ``pain.002`` (validated by lxml against the ISO pain.002.001.03 XSD that the
``pain001`` package ships, then read with xmlschema's defused parser) into answers for
the payouts service's ``absorb``, keeps it in ``<directory>/reports``, and ``status``
answers what the reports said, or UNKNOWN until one named the payment. Everything the
rail knows is in those folders, so a restarted rail knows it again.
"""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
import threading
import xml.etree.ElementTree as ET
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import xmlschema
from lxml import etree
from schwifty import BIC, IBAN
from schwifty.exceptions import SchwiftyException

from tally.adapters.payouts.iso20022 import (
    NS_001,
    PAID_CODES,
    PAIN_001,
    PAIN_002,
    FilePayment,
    StatusReportError,
    amount_text,
    answers_of,
    end_to_end_id,
    message_id,
    read_status_report,
    sum_text,
)
from tally.kernel.clock import Clock
from tally.kernel.currency import is_known, scale_of
from tally.kernel.limits import RailLimits
from tally.payouts.rails import PayoutInstruction, RailAnswer, RailOutcome

NAME_MAX = 70  # ISO 20022 Max70Text: a party's name
REFERENCE_MAX = 140  # Max140Text: unstructured remittance information
OTHER_ACCOUNT_MAX = 34  # Max34Text: an account number that is not an IBAN
_ERRORS_SHOWN = 5


class BankFileRefused(ValueError):
    """A payment the bank file cannot carry (bad IBAN or BIC, unknown currency); the
    message names the payout."""


class BankFileInvalid(RuntimeError):
    """A built file failed the XSD: it is not released. A bug or data the checks above
    missed; the message lists the schema's first complaints."""


# -- where the official schemas come from (installed packages, never the network) --------


def _package_dir(package: str) -> Path:
    """A package's folder, found without running its ``__init__``."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {package!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def pain001_xsd_path() -> Path:
    return _package_dir("sepaxml") / "schemas" / f"{PAIN_001}.xsd"


def pain002_xsd_path() -> Path:
    return _package_dir("pain001") / "pain002" / "schemas" / f"{PAIN_002}.xsd"


_schemas = threading.local()  # lxml's compiled schemas, one set per thread


def _schema(path: Path) -> etree.XMLSchema:
    cached: dict[Path, etree.XMLSchema] = _schemas.__dict__.setdefault("by_path", {})
    if path not in cached:
        cached[path] = etree.XMLSchema(etree.parse(str(path), _untrusted_parser()))
    return cached[path]


def _untrusted_parser() -> etree.XMLParser:
    # No entity is expanded, no DTD loaded, nothing fetched from the network.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def schema_errors(document: bytes, xsd: Path) -> list[str]:
    """The schema's complaints about ``document`` (empty when it validates), by libxml2
    (lxml): xmlschema, pure Python, validated some 200 payments a second, too slow for a
    run of 100,000. A document type declaration is refused outright (entities are the
    way XML bombs and external fetches come in); a document that is not XML raises
    ``ValueError``."""
    try:
        root = etree.fromstring(document, _untrusted_parser())
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"not well-formed XML: {exc}") from None
    if root.getroottree().docinfo.doctype:
        return ["a document type declaration (DOCTYPE) is not accepted"]
    schema = _schema(xsd)
    if schema.validate(root):
        return []
    errors = [f"line {e.line}: {e.message}" for e in schema.error_log]
    return errors[:_ERRORS_SHOWN]


# -- the payments, checked --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Debtor:
    """The account the payouts are paid from."""

    name: str
    iban: str
    bic: str


@dataclass(frozen=True, slots=True)
class _Payment:
    instruction: PayoutInstruction
    e2e: str
    iban: str  # compact, or "" when the account is not an IBAN
    other_account: str
    bic: str
    sepa: bool


def _iban(text: str) -> IBAN | None:
    compact = "".join(text.split()).upper()
    if len(compact) < 4 or not (compact[:2].isalpha() and compact[2:4].isdigit()):
        return None  # not written as an IBAN: an account number of the bank's own
    return IBAN(compact)


def check_payment(instruction: PayoutInstruction, debtor_in_sepa: bool = True) -> _Payment:
    """The payment as the file will carry it, or :class:`BankFileRefused` naming the
    payout: IBAN check digits and national format, BIC format and country (schwifty),
    a currency Tally knows the exponent of."""
    who = f"payout {instruction.payout_id!r}"
    if not is_known(instruction.currency):
        raise BankFileRefused(f"{who}: unknown currency {instruction.currency!r}")
    try:
        iban = _iban(instruction.account)
    except SchwiftyException as exc:
        raise BankFileRefused(f"{who}: IBAN {instruction.account!r} is invalid: {exc}") from None
    bic = ""
    if instruction.bic.strip():
        try:
            bic = BIC(instruction.bic.strip().upper()).compact
        except SchwiftyException as exc:
            raise BankFileRefused(f"{who}: BIC {instruction.bic!r} is invalid: {exc}") from None
    sepa = (
        instruction.currency == "EUR"
        and iban is not None
        and bool(iban.in_sepa_zone)
        and debtor_in_sepa
    )
    other = ""
    if iban is None:
        other = "".join(instruction.account.split())
        if not other or len(other) > OTHER_ACCOUNT_MAX:
            raise BankFileRefused(
                f"{who}: account {instruction.account!r} is neither an IBAN nor an account "
                f"number of at most {OTHER_ACCOUNT_MAX} characters"
            )
    if not sepa and not bic:
        raise BankFileRefused(
            f"{who}: a cross-border payment ({instruction.currency}) needs the BIC of the "
            "beneficiary's bank"
        )
    if not instruction.beneficiary_name.strip():
        raise BankFileRefused(f"{who}: the beneficiary has no name")
    return _Payment(
        instruction,
        end_to_end_id(instruction.payout_id),
        iban.compact if iban is not None else "",
        other,
        bic,
        sepa,
    )


# -- building the file ------------------------------------------------------------------


def _clean(text: str, limit: int) -> str:
    from text_unidecode import unidecode  # sepaxml's own transliteration, for our blocks

    return " ".join(unidecode(text).split())[:limit] or "-"


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    node = ET.SubElement(parent, f"{{{NS_001}}}{tag}", attrs)
    if text is not None:
        node.text = text
    return node


def _q(tag: str) -> str:
    return f"{{{NS_001}}}{tag}"


def _sepa_root(debtor: Debtor, payments: Sequence[_Payment], execution: date) -> ET.Element:
    """The document sepaxml builds: its group header, and the SEPA block when there are
    SEPA payments (its amounts are cents: only EUR goes through it)."""
    from sepaxml import SepaTransfer

    transfer = SepaTransfer(
        {
            "name": debtor.name,
            "IBAN": debtor.iban,
            "BIC": debtor.bic,
            "batch": True,
            "currency": "EUR",
        },
        schema=PAIN_001,
    )
    for payment in payments:
        assert payment.sepa and scale_of(payment.instruction.currency) == 2
        entry: dict[str, Any] = {
            "name": payment.instruction.beneficiary_name,
            "IBAN": payment.iban,
            "amount": payment.instruction.amount_minor,
            "currency": "EUR",
            "execution_date": execution,
            "description": payment.instruction.reference or payment.instruction.payout_id,
            "endtoend_id": payment.e2e,
        }
        if payment.bic:
            entry["BIC"] = payment.bic
        transfer.add_payment(entry)
    # Validated below, whole, once the cross-border blocks are in.
    # sepaxml's own output, never outside input: the stdlib parser is fine here.
    return ET.fromstring(transfer.export(validate=False))  # noqa: S314


def _cross_border_block(
    root: ET.Element,
    debtor: Debtor,
    block_id: str,
    payments: Sequence[_Payment],
    execution: date,
) -> None:
    initiation = root.find(_q("CstmrCdtTrfInitn"))
    assert initiation is not None
    block = _sub(initiation, "PmtInf")
    _sub(block, "PmtInfId", block_id)
    _sub(block, "PmtMtd", "TRF")
    _sub(block, "BtchBookg", "true")
    _sub(block, "NbOfTxs", str(len(payments)))
    _sub(
        block,
        "CtrlSum",
        sum_text((p.instruction.amount_minor, p.instruction.currency) for p in payments),
    )
    _sub(block, "ReqdExctnDt", execution.isoformat())
    _sub(_sub(block, "Dbtr"), "Nm", _clean(debtor.name, NAME_MAX))
    _sub(_sub(_sub(block, "DbtrAcct"), "Id"), "IBAN", debtor.iban)
    _sub(_sub(_sub(block, "DbtrAgt"), "FinInstnId"), "BIC", debtor.bic)
    _sub(block, "ChrgBr", "SHAR")
    for payment in payments:
        instruction = payment.instruction
        tx = _sub(block, "CdtTrfTxInf")
        _sub(_sub(tx, "PmtId"), "EndToEndId", payment.e2e)
        _sub(
            _sub(tx, "Amt"),
            "InstdAmt",
            amount_text(instruction.amount_minor, instruction.currency),
            Ccy=instruction.currency,
        )
        _sub(_sub(_sub(tx, "CdtrAgt"), "FinInstnId"), "BIC", payment.bic)
        _sub(_sub(tx, "Cdtr"), "Nm", _clean(instruction.beneficiary_name, NAME_MAX))
        account = _sub(_sub(tx, "CdtrAcct"), "Id")
        if payment.iban:
            _sub(account, "IBAN", payment.iban)
        else:
            _sub(_sub(account, "Othr"), "Id", payment.other_account)
        _sub(
            _sub(tx, "RmtInf"),
            "Ustrd",
            _clean(instruction.reference or instruction.payout_id, REFERENCE_MAX),
        )


@dataclass(frozen=True, slots=True)
class BuiltFile:
    message_id: str
    run_id: str
    content: bytes
    payments: dict[str, FilePayment]  # by EndToEndId


def build_pain001(
    run_id: str,
    instructions: Sequence[PayoutInstruction],
    debtor: Debtor,
    created_at: datetime,
    execution: date,
) -> BuiltFile:
    """One run's pain.001.001.03, validated against the XSD; :class:`BankFileRefused`
    names a payout the file cannot carry, :class:`BankFileInvalid` a file that failed the
    schema (never released)."""
    if not instructions:
        raise BankFileRefused(f"run {run_id!r}: no payments to put in a file")
    try:
        debtor_iban = IBAN(debtor.iban)
        BIC(debtor.bic)
    except SchwiftyException as exc:
        raise BankFileRefused(f"the debtor account is invalid: {exc}") from None
    payments = [check_payment(i, bool(debtor_iban.in_sepa_zone)) for i in instructions]
    seen: dict[str, str] = {}
    for payment in payments:
        other = seen.setdefault(payment.e2e, payment.instruction.payout_id)
        if other != payment.instruction.payout_id:
            raise BankFileRefused(
                f"payouts {other!r} and {payment.instruction.payout_id!r} would travel "
                f"under the same EndToEndId {payment.e2e!r}"
            )
    msg_id = message_id(run_id, (i.idempotency_key for i in instructions))
    sepa = [p for p in payments if p.sepa]
    root = _sepa_root(debtor, sepa, execution)
    initiation = root.find(_q("CstmrCdtTrfInitn"))
    assert initiation is not None
    header = initiation.find(_q("GrpHdr"))
    assert header is not None
    # sepaxml draws a random MsgId and PmtInfId and reads the wall clock: the file's ids
    # are ours (the same payments give the same ids), its time the injected clock's.
    _set(header, "MsgId", msg_id)
    _set(header, "CreDtTm", created_at.strftime("%Y-%m-%dT%H:%M:%S"))
    blocks: dict[str, FilePayment] = {}
    block_ids: list[str] = []
    for block in initiation.findall(_q("PmtInf")):
        block_id = f"{msg_id[:26]}-{len(block_ids):02d}SEPA"
        _set(block, "PmtInfId", block_id)
        block_ids.append(block_id)
        for p in sepa:
            blocks[p.e2e] = FilePayment(p.instruction.payout_id, p.e2e, block_id)
    by_currency: dict[str, list[_Payment]] = {}
    for p in payments:
        if not p.sepa:
            by_currency.setdefault(p.instruction.currency, []).append(p)
    for currency in sorted(by_currency):
        block_id = f"{msg_id[:26]}-{len(block_ids):02d}{currency}"
        _cross_border_block(root, debtor, block_id, by_currency[currency], execution)
        block_ids.append(block_id)
        for p in by_currency[currency]:
            blocks[p.e2e] = FilePayment(p.instruction.payout_id, p.e2e, block_id)
    _set(header, "NbOfTxs", str(len(payments)))
    _set(header, "CtrlSum", sum_text((i.amount_minor, i.currency) for i in instructions))
    ET.register_namespace("", NS_001)
    content = ET.tostring(root, encoding="UTF-8", xml_declaration=True)
    errors = schema_errors(content, pain001_xsd_path())
    if errors:
        raise BankFileInvalid(
            f"run {run_id!r}: the pain.001 file failed the XSD and was not released: "
            + "; ".join(errors)
        )
    return BuiltFile(msg_id, run_id, content, blocks)


def _set(parent: ET.Element, tag: str, text: str) -> None:
    node = parent.find(_q(tag))
    assert node is not None, tag
    node.text = text


# -- the rail ---------------------------------------------------------------------------


def _write_atomically(path: Path, content: bytes) -> None:
    """Temp file in the same folder, fsync, rename: a reader sees the whole file or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


@dataclass(slots=True)
class _Released:
    message_id: str
    run_id: str
    payments: dict[str, FilePayment]
    keys: dict[str, str] = field(default_factory=dict)  # idempotency key -> payout id


class BankFileRail:
    """The :class:`~tally.payouts.rails.Rail` that pays by ISO 20022 bank file.

    ``directory`` holds ``outbox/`` (the files for the bank connector: EBICS, SFTP),
    ``released/`` (the rail's record of each file) and ``reports/`` (the status reports
    it has read). ``paid_codes`` narrows which pain.002 codes confirm a payment (default
    ACSC, ACSP, ACWC; ``{"ACSC"}`` for a bank that reports settlement)."""

    def __init__(
        self,
        directory: Path,
        debtor: Debtor,
        clock: Clock,
        *,
        name: str = "bank-file",
        currencies: Collection[str] = ("EUR",),
        execution_days: int = 0,
        paid_codes: frozenset[str] = PAID_CODES,
        limits: RailLimits | None = None,
    ) -> None:
        self._name = name
        self._directory = Path(directory)
        self._debtor = debtor
        self._clock = clock
        self._currencies = frozenset(currencies)
        self._execution_days = execution_days
        self._paid_codes = paid_codes
        self._limits = limits or RailLimits()
        self._lock = threading.Lock()
        self._files: dict[str, _Released] = {}
        self._by_key: dict[str, str] = {}  # idempotency key -> message id
        self._status: dict[str, RailAnswer] = {}  # payout id -> what the reports said
        self._reports: list[str] = []  # status report ids read, in order
        self._load()

    @property
    def name(self) -> str:
        return self._name

    @property
    def outbox(self) -> Path:
        return self._directory / "outbox"

    def supports(self, currency: str) -> bool:
        return currency in self._currencies

    # -- out --------------------------------------------------------------------------
    def submit(self, instructions: Sequence[PayoutInstruction]) -> Sequence[RailAnswer]:
        """SUBMITTED for each payment put in (or already in) a released file; REJECTED
        for one the file cannot carry (bad IBAN or BIC, a currency this rail does not
        pay), with the reason naming it. :class:`BankFileInvalid` if a file failed the
        XSD: nothing of that run is released."""
        answers: dict[int, RailAnswer] = {}
        runs: dict[str, list[tuple[int, PayoutInstruction]]] = {}
        with self._lock:
            for index, instruction in enumerate(instructions):
                known = self._by_key.get(instruction.idempotency_key)
                if known is not None:
                    answers[index] = self._status.get(
                        instruction.payout_id,
                        RailAnswer(instruction.payout_id, RailOutcome.SUBMITTED, known),
                    )
                    continue
                problem = self._problem(instruction)
                if problem:
                    answers[index] = RailAnswer(
                        instruction.payout_id, RailOutcome.REJECTED, reason=problem
                    )
                    continue
                runs.setdefault(instruction.run_id, []).append((index, instruction))
            for run_id, entries in runs.items():
                if len(entries) > self._limits.bank_file_max_payments:
                    raise BankFileRefused(
                        f"run {run_id!r}: {len(entries)} payments is more than one file "
                        f"carries ({self._limits.bank_file_max_payments})"
                    )
                built = self._release(run_id, [instruction for _, instruction in entries])
                for index, instruction in entries:
                    answers[index] = RailAnswer(
                        instruction.payout_id, RailOutcome.SUBMITTED, built.message_id
                    )
        return [answers[index] for index in range(len(instructions))]

    def _problem(self, instruction: PayoutInstruction) -> str:
        if not self.supports(instruction.currency):
            return f"payout {instruction.payout_id!r}: {self._name} does not pay in " + (
                instruction.currency
            )
        try:
            check_payment(instruction, bool(IBAN(self._debtor.iban).in_sepa_zone))
        except BankFileRefused as exc:
            return str(exc)
        return ""

    def _release(self, run_id: str, instructions: list[PayoutInstruction]) -> BuiltFile:
        now = self._clock.now()
        execution = date.fromordinal(now.date().toordinal() + self._execution_days)
        built = build_pain001(run_id, instructions, self._debtor, now, execution)
        keys = {i.idempotency_key: i.payout_id for i in instructions}
        # The outbox first, then the record. A crash between the two leaves a released
        # file without a record: the resubmission builds the same MsgId again, which the
        # bank's duplicate-file check refuses (ADR 0022).
        _write_atomically(self.outbox / f"{built.message_id}.xml", built.content)
        record = {
            "message_id": built.message_id,
            "run_id": run_id,
            "payments": [
                [p.end_to_end_id, p.payout_id, p.block_id] for p in built.payments.values()
            ],
            "keys": keys,
        }
        released = self._directory / "released"
        _write_atomically(released / f"{built.message_id}.xml", built.content)
        _write_atomically(released / f"{built.message_id}.json", json.dumps(record).encode())
        self._remember(_Released(built.message_id, run_id, dict(built.payments), keys))
        return built

    def _remember(self, released: _Released) -> None:
        self._files[released.message_id] = released
        for key in released.keys:
            self._by_key[key] = released.message_id

    # -- back -------------------------------------------------------------------------
    def read_status_report_file(self, path: Path, *, run_id: str | None = None) -> list[RailAnswer]:
        size = path.stat().st_size
        if size > self._limits.status_report_max_bytes:
            raise StatusReportError(
                f"status report {path.name} is {size} bytes, over the limit of "
                f"{self._limits.status_report_max_bytes}"
            )
        return self.read_status_report(path.read_bytes(), run_id=run_id)

    def read_status_report(self, report: bytes, *, run_id: str | None = None) -> list[RailAnswer]:
        """The answers a pain.002 gives, for the payouts service's ``absorb``.

        Refused whole (:class:`StatusReportError`, nothing applied) when it is too large,
        fails the pain.002 XSD, answers a file this rail never released, answers another
        run's file than ``run_id``, or names a payment the file does not hold. Reading
        the same report again gives the same answers."""
        if len(report) > self._limits.status_report_max_bytes:
            raise StatusReportError(
                f"status report of {len(report)} bytes is over the limit of "
                f"{self._limits.status_report_max_bytes}"
            )
        try:
            errors = schema_errors(report, pain002_xsd_path())
        except ValueError as exc:
            raise StatusReportError(f"the status report is not well-formed XML: {exc}") from None
        if errors:
            raise StatusReportError(
                "the status report fails the pain.002.001.03 XSD: " + "; ".join(errors)
            )
        root = xmlschema.XMLResource(report, allow="none", defuse="always").root
        parsed = read_status_report(root)
        with self._lock:
            released = self._files.get(parsed.original_message_id)
            if released is None:
                raise StatusReportError(
                    f"status report {parsed.message_id!r} answers message "
                    f"{parsed.original_message_id!r}, which {self._name} never released"
                )
            if run_id is not None and released.run_id != run_id:
                raise StatusReportError(
                    f"status report {parsed.message_id!r} answers the file of run "
                    f"{released.run_id!r}, not of run {run_id!r}"
                )
            answers = answers_of(parsed, released.payments, self._paid_codes)
            report_id = parsed.message_id or parsed.original_message_id
            if report_id not in self._reports:
                name = f"{len(self._reports):08d}.xml"
                _write_atomically(self._directory / "reports" / name, report)
                self._reports.append(report_id)
            self._apply(answers)
        return answers

    def _apply(self, answers: Iterable[RailAnswer]) -> None:
        for answer in answers:
            known = self._status.get(answer.payout_id)
            # A final word (paid, rejected) stays: a later "received" does not undo it.
            if known is None or known.outcome not in (RailOutcome.CONFIRMED, RailOutcome.REJECTED):
                self._status[answer.payout_id] = answer

    def status(self, instruction: PayoutInstruction) -> RailAnswer:
        with self._lock:
            known = self._status.get(instruction.payout_id)
            if known is not None:
                return known
            if instruction.idempotency_key in self._by_key:
                reason = "in a released file; no status report has named it yet"
            else:
                reason = f"{self._name} has released no file with this payment"
            return RailAnswer(instruction.payout_id, RailOutcome.UNKNOWN, reason=reason)

    # -- restart ----------------------------------------------------------------------
    def _load(self) -> None:
        for record_path in sorted((self._directory / "released").glob("*.json")):
            record = json.loads(record_path.read_text(encoding="utf-8"))
            payments = {e2e: FilePayment(pid, e2e, block) for e2e, pid, block in record["payments"]}
            self._remember(
                _Released(record["message_id"], record["run_id"], payments, dict(record["keys"]))
            )
        for report_path in sorted((self._directory / "reports").glob("*.xml")):
            root = xmlschema.XMLResource(
                report_path.read_bytes(), allow="none", defuse="always"
            ).root
            parsed = read_status_report(root)
            released = self._files.get(parsed.original_message_id)
            if released is not None:
                self._apply(answers_of(parsed, released.payments, self._paid_codes))
            self._reports.append(parsed.message_id or parsed.original_message_id)

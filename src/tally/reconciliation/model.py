"""Reconciliation's model: report lines, Tally's lines, rules, breaks. Pure.

A provider's report says what the provider believes happened; Tally's side says what
Tally accepted (see ADR 0019 for where it is read from). Matching pairs them and names
every difference as a typed :class:`Break`; the break report is a function of the two
sides and the rules only, so it can be re-computed and compared byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import IntEnum, StrEnum

from tally.kernel.values import value

# Kinds whose amount the provider pays out (they lower GGR); a bet raises it.
PAYOUT_KINDS = frozenset({"win", "jackpot_win", "bonus_win"})
ROLLBACK = "rollback"
# A report may give a round's net (stakes minus payouts) as one line of this kind,
# netted against Tally's bet, wins and rollbacks of the round (rules.round_netting).
ROUND_NET = "round_net"


@value
class ReportLine:
    """One line of a provider's report, parsed (built once per line, on the hot path)."""

    provider: str
    source: str  # the report file's name
    line: int  # its line number in that file
    tx_id: str
    kind: str
    operator: str
    player: str
    round_id: str
    currency: str
    amount: int  # minor units; negative only for a round_net or an adjustment
    occurred_at: datetime  # UTC
    ref: str = ""  # a rollback's original: the provider's tx id

    @property
    def identity(self) -> str:
        """The line's identity, independent of which file or line it came in."""
        return f"{self.tx_id}:{self.kind}"


@value
class TallyLine:
    """One transaction as Tally recorded it (from the event log)."""

    provider: str
    key: str  # the idempotency key, provider:tx_id:kind
    tx_id: str
    kind: str
    operator: str
    player: str
    round_id: str
    currency: str
    amount: int
    occurred_at: datetime  # UTC
    ref: str = ""  # a rollback's original, as the provider's tx id
    rolled_back: bool = False


def net(kind: str, amount: int) -> int:
    """A line's contribution to GGR (stakes minus payouts): what balances compare."""
    if kind in PAYOUT_KINDS:
        return -amount
    if kind == ROLLBACK:
        return 0  # its effect is its original's, which is left out (see voided)
    return amount  # bet, adjustment, round_net


@dataclass(frozen=True, slots=True)
class MatchRules:
    """Versioned, per provider. A change of tolerance is a new version, so a run names
    the rules it was matched under and can be re-run under the same ones."""

    provider: str
    version: int = 1
    amount_tolerance: int = 0  # minor units a tx-id match may differ by and still match
    time_tolerance_s: int = 0  # seconds a (player, round, kind, amount) match may differ by
    zone: str = "UTC"  # the provider's report time zone: its days are ours here
    round_netting: bool = True  # a round's leftovers compared by their net
    # A difference past amount_tolerance but within this is FX rounding (the provider
    # converted and rounded), not a wrong amount. 0: no FX rounding is expected.
    fx_rounding: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "provider": self.provider,
            "version": self.version,
            "amount_tolerance": self.amount_tolerance,
            "time_tolerance_s": self.time_tolerance_s,
            "zone": self.zone,
            "round_netting": self.round_netting,
            "fx_rounding": self.fx_rounding,
        }


RULE_FIELDS = frozenset(
    {"version", "amount_tolerance", "time_tolerance_s", "zone", "round_netting", "fx_rounding"}
)


def rules_from_document(doc: object) -> dict[str, MatchRules]:
    """``{"softswiss": {"version": 2, "amount_tolerance": 1, ...}, ...}`` as rules per
    provider; a ValueError names what is wrong (unknown fields, wrong types)."""
    if not isinstance(doc, dict):
        raise ValueError("match rules: a JSON object of providers")
    rules: dict[str, MatchRules] = {}
    for provider, spec in sorted(doc.items()):
        if not isinstance(spec, dict):
            raise ValueError(f"match rules of {provider}: an object")
        unknown = sorted(set(spec) - RULE_FIELDS)
        if unknown:
            raise ValueError(f"match rules of {provider}: unknown {', '.join(unknown)}")
        for name, given in spec.items():
            wanted = str if name == "zone" else bool if name == "round_netting" else int
            if type(given) is not wanted or (isinstance(given, int) and given < 0):
                raise ValueError(f"match rules of {provider}: {name} must be {wanted.__name__}")
        rules[provider] = MatchRules(provider, **spec)
    return rules


class BreakKind(IntEnum):
    """What kind of difference a break is, in the order a pair of lines is checked: the
    first that applies names it, so a pair gets one kind whatever else differs."""

    MISSING_IN_TALLY = 1
    MISSING_IN_REPORT = 2
    DUPLICATE_IN_REPORT = 3
    CURRENCY_MISMATCH = 4
    ROLLBACK_MISMATCH = 5
    AMOUNT_MISMATCH = 6
    FX_ROUNDING = 7
    TIMING = 8  # matched, but on either side of the report's day cut-off

    @property
    def code(self) -> str:
        return self.name.lower()


class BreakStatus(StrEnum):
    OPEN = "open"
    INVESTIGATING = "investigating"
    RESOLVED = "resolved"
    WRITTEN_OFF = "written_off"


# Where each status may go next: a closed break stays closed (a new run finds it again
# if it is still there).
NEXT_STATUS: dict[BreakStatus, frozenset[BreakStatus]] = {
    BreakStatus.OPEN: frozenset(
        {BreakStatus.INVESTIGATING, BreakStatus.RESOLVED, BreakStatus.WRITTEN_OFF}
    ),
    BreakStatus.INVESTIGATING: frozenset(
        {BreakStatus.OPEN, BreakStatus.RESOLVED, BreakStatus.WRITTEN_OFF}
    ),
    BreakStatus.RESOLVED: frozenset(),
    BreakStatus.WRITTEN_OFF: frozenset(),
}


@dataclass(frozen=True, slots=True)
class Break:
    """One difference. ``report_ref`` / ``tally_key`` name the lines on each side
    (several, comma-joined and sorted, for a round); amounts are their nets (GGR), so a
    balance difference is the sum of the breaks that explain it."""

    kind: BreakKind
    provider: str
    operator: str
    currency: str
    day: date  # the report's day (the provider's zone); Tally's for MISSING_IN_REPORT
    report_ref: str  # tx_id:kind of the report line(s), "" if none
    tally_key: str  # idempotency key(s) of Tally's line(s), "" if none
    report_amount: int  # net of the report line(s)
    tally_amount: int  # net of Tally's line(s)
    tally_day: date | None = None  # Tally's day, when it has lines (TIMING: differs)
    # file:line of the first report line named, for a person to look at; left out of the
    # break report and of equality (a report split into other files is the same report).
    source: str = field(default="", compare=False)
    # A MISSING_IN_TALLY break's one report line, kept with it so that it can be re-driven
    # as an event after the run's lines are gone; left out of the report and of equality.
    line: ReportLine | None = field(default=None, compare=False, repr=False)

    @property
    def difference(self) -> int:
        return self.report_amount - self.tally_amount

    @property
    def id(self) -> str:
        """Stable across runs of the same inputs: kind, day and the lines it names."""
        return f"{self.kind.code}:{self.day.isoformat()}:{self.report_ref}|{self.tally_key}"

    def sort_key(self) -> tuple[str, int, str, str, str, str]:
        return (
            self.day.isoformat(),
            int(self.kind),
            self.operator,
            self.currency,
            self.report_ref,
            self.tally_key,
        )


@dataclass(frozen=True, slots=True)
class BalanceRow:
    """Per (provider, operator, currency, day): the report's net against Tally's."""

    provider: str
    operator: str
    currency: str
    day: date
    report_total: int
    tally_total: int
    explained: int  # the sum of the breaks' parts on this row
    tolerated: int  # differences accepted within the amount tolerance
    breaks: tuple[str, ...]  # ids of the breaks that explain it

    @property
    def difference(self) -> int:
        return self.report_total - self.tally_total

    @property
    def unexplained(self) -> bool:
        """A difference no break accounts for. Differences accepted line by line within
        the amount tolerance are not breaks, so a day where they add up is flagged."""
        return self.difference != self.explained


@dataclass(frozen=True, slots=True)
class StatusChange:
    status: BreakStatus
    at: datetime
    by: str
    note: str = ""
    owner: str = ""


@dataclass(frozen=True, slots=True)
class KeptBreak:
    """A break as kept: found by a run, with an owner, a status and its history."""

    id: int
    run_id: int
    brk: Break
    found_at: datetime
    status: BreakStatus = BreakStatus.OPEN
    owner: str = ""
    history: tuple[StatusChange, ...] = field(default_factory=tuple)
    source: str = ""  # file:line of the report line, where one named it
    # The last ledger transfer a rule posted for it: ``recon:fx:<id>`` when an FX rounding
    # adjustment resolved it, ``recon:fx:<id>:reversal`` once a reopening undid that.
    adjustment: str = ""

    def age_days(self, now: datetime) -> int:
        return max(0, (now - self.found_at).days)


class Transition(IntEnum):
    """Why a status change is refused (a value, not an exception)."""

    OK = 0
    NOT_FOUND = 1
    CLOSED = 2  # resolved or written off: stays so
    NOT_ALLOWED = 3
    NOTE_REQUIRED = 4  # closing a break says why


def check_reopen(current: BreakStatus, note: str) -> Transition:
    """Reopening undoes a close (a person's or a rule's): only a closed break, with a note."""
    if NEXT_STATUS[current]:
        return Transition.NOT_ALLOWED  # still open: nothing to undo
    if not note.strip():
        return Transition.NOTE_REQUIRED
    return Transition.OK


def check_transition(current: BreakStatus, new: BreakStatus, note: str) -> Transition:
    if current is new and current in (BreakStatus.OPEN, BreakStatus.INVESTIGATING):
        return Transition.OK  # an owner change keeps the status
    if not NEXT_STATUS[current]:
        return Transition.CLOSED
    if new not in NEXT_STATUS[current]:
        return Transition.NOT_ALLOWED
    if new in (BreakStatus.RESOLVED, BreakStatus.WRITTEN_OFF) and not note.strip():
        return Transition.NOTE_REQUIRED
    return Transition.OK

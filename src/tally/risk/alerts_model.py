"""Alerts as data, and the rules that move them. Pure: no I/O, no clock, no store.

An alert is one condition, named by ``(kind, key)`` (see :class:`AlertSignal`): a signal
for a (kind, key) that has an alert refreshes it, never makes a second one. Its life is
open -> acknowledged -> resolved; a clear does not resolve at once but starts a *clearing*
spell that must hold for the rules' hold time and number of clean evaluations
(hysteresis), and a signal inside that spell (or within the reopen window after the
alert resolved) reopens the same alert, so a condition at its threshold does not flap.

What a person sees and what is delivered is narrowed two ways, never by deleting an
alert: a *silence* (author, reason, matchers, expiry) mutes the alerts its matchers
match, and an *inhibition* mutes alerts that another active alert explains (a provider
outage explains the RTP and volume alerts of the same provider and region). A muted
alert is still kept, listed and audited.

Alert rules are versioned configuration: each saved document gets the next version and
is validated when saved (:func:`rules_from_document`), so a rule naming an unknown
dimension, a silence matching everything or a playbook acting on every alert is refused
then, not when it fires.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from tally.kernel.alerts import AlertSignal, Severity

# What a matcher, an inhibition or a playbook may name. Anything else is refused on save.
DIMENSIONS = ("kind", "key", "severity", "region", "provider", "operator", "game")
TEXT_MAX = 256  # a matcher value, a reason, an author
MATCHERS_MAX = 16
RULES_MAX = 200  # inhibitions, and playbooks, in one rules document


class AlertStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"

    @property
    def active(self) -> bool:
        return self is not AlertStatus.RESOLVED


class RulesRefused(ValueError):
    """Configuration that cannot be saved, with the reason a person can act on."""


@dataclass(frozen=True, slots=True)
class Alert:
    """One condition's alert as kept. ``clearing_since`` is set while the condition is
    reported clear but the hysteresis has not yet resolved it; ``clean`` counts the clean
    evaluations seen in that spell."""

    id: int
    kind: str
    key: str
    severity: Severity
    status: AlertStatus
    cause: str
    opened_at: datetime
    updated_at: datetime
    last_seen_at: datetime
    region: str = ""
    provider: str = ""
    operator: str = ""
    game: str = ""
    money_at_risk: int = 0
    currency: str = ""
    confidence_permille: int = 1000
    evidence: Mapping[str, str] = field(default_factory=dict)
    refs: tuple[str, ...] = ()
    signals: int = 1  # how many signals this alert has taken (deduplicated into it)
    reopened: int = 0  # how often it came back inside a clearing spell or reopen window
    clearing_since: datetime | None = None
    clean: int = 0
    acknowledged_by: str = ""
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None

    @property
    def priority(self) -> int:
        """Money at risk (minor units) times confidence, rounded down, as the signal's."""
        return self.money_at_risk * self.confidence_permille // 1000

    def label(self, dimension: str) -> str:
        value = getattr(self, dimension)
        return value.value if isinstance(value, Severity) else str(value)

    def labels(self) -> dict[str, str]:
        return {d: self.label(d) for d in DIMENSIONS}


def alert_to_dict(a: Alert) -> dict[str, Any]:
    """The alert as plain JSON values (audit records, the stores' rows, deliveries)."""
    return {
        "id": a.id, "kind": a.kind, "key": a.key, "severity": a.severity.value,
        "status": a.status.value, "cause": a.cause, "opened_at": a.opened_at.isoformat(),
        "updated_at": a.updated_at.isoformat(), "last_seen_at": a.last_seen_at.isoformat(),
        "region": a.region, "provider": a.provider, "operator": a.operator, "game": a.game,
        "money_at_risk": str(a.money_at_risk), "currency": a.currency,
        "confidence_permille": a.confidence_permille, "priority": str(a.priority),
        "evidence": dict(a.evidence), "refs": list(a.refs), "signals": a.signals,
        "reopened": a.reopened,
        "clearing_since": a.clearing_since.isoformat() if a.clearing_since else None,
        "clean": a.clean, "acknowledged_by": a.acknowledged_by,
        "acknowledged_at": a.acknowledged_at.isoformat() if a.acknowledged_at else None,
        "resolved_at": a.resolved_at.isoformat() if a.resolved_at else None,
    }  # fmt: skip


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def alert_from_dict(d: Mapping[str, Any]) -> Alert:
    return Alert(
        id=int(d["id"]), kind=d["kind"], key=d["key"], severity=Severity(d["severity"]),
        status=AlertStatus(d["status"]), cause=d["cause"],
        opened_at=datetime.fromisoformat(d["opened_at"]),
        updated_at=datetime.fromisoformat(d["updated_at"]),
        last_seen_at=datetime.fromisoformat(d["last_seen_at"]),
        region=d["region"], provider=d["provider"], operator=d["operator"], game=d["game"],
        money_at_risk=int(d["money_at_risk"]), currency=d["currency"],
        confidence_permille=int(d["confidence_permille"]), evidence=dict(d["evidence"]),
        refs=tuple(d["refs"]), signals=int(d["signals"]), reopened=int(d["reopened"]),
        clearing_since=_when(d["clearing_since"]), clean=int(d["clean"]),
        acknowledged_by=d["acknowledged_by"], acknowledged_at=_when(d["acknowledged_at"]),
        resolved_at=_when(d["resolved_at"]),
    )  # fmt: skip


# -- matchers and silences -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Matcher:
    """``dimension`` equals ``value``; a value ending in ``*`` matches by prefix
    (``risk.rtp*``). A bare ``*`` matches anything."""

    dimension: str
    value: str

    def __post_init__(self) -> None:
        if self.dimension not in DIMENSIONS:
            raise RulesRefused(
                f"unknown dimension {self.dimension!r}: one of {', '.join(DIMENSIONS)}"
            )
        if not self.value or len(self.value) > TEXT_MAX:
            raise RulesRefused(f"a matcher on {self.dimension} needs a value of 1-{TEXT_MAX}")

    @property
    def wildcard(self) -> bool:
        return self.value == "*"

    def matches(self, labels: Mapping[str, str]) -> bool:
        got = labels.get(self.dimension, "")
        if self.value.endswith("*"):
            return got.startswith(self.value[:-1])
        return got == self.value

    def __str__(self) -> str:
        return f"{self.dimension}={self.value}"

    @classmethod
    def parse(cls, text: str) -> Matcher:
        dimension, sep, value = text.partition("=")
        if not sep:
            raise RulesRefused(f"a matcher is DIMENSION=VALUE: {text!r}")
        return cls(dimension.strip(), value.strip())


def matches_all(matchers: Sequence[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


def too_wide(matchers: Sequence[Matcher]) -> bool:
    """Whether ``matchers`` would match every alert: none, or only bare wildcards."""
    return all(m.wildcard for m in matchers)


@dataclass(frozen=True, slots=True)
class Silence:
    id: int
    author: str
    reason: str
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    created_at: datetime
    expired_at: datetime | None = None  # set when someone expires it early

    def active(self, at: datetime) -> bool:
        end = self.ends_at if self.expired_at is None else min(self.ends_at, self.expired_at)
        return self.starts_at <= at < end

    def mutes(self, alert: Alert, at: datetime) -> bool:
        return self.active(at) and matches_all(self.matchers, alert.labels())


SILENCE_MAX = timedelta(days=30)  # a longer silence is a rule change, not a silence


def check_silence(
    author: str, reason: str, matchers: Sequence[Matcher], starts_at: datetime, ends_at: datetime
) -> None:
    """Refuse a silence nobody can answer for, one matching everything, or one that never
    ends (RulesRefused with the reason)."""
    if not author.strip() or len(author) > TEXT_MAX:
        raise RulesRefused("a silence needs its author")
    if not reason.strip() or len(reason) > TEXT_MAX * 4:
        raise RulesRefused("a silence needs a reason (why it is safe to mute these alerts)")
    if len(matchers) > MATCHERS_MAX:
        raise RulesRefused(f"a silence takes at most {MATCHERS_MAX} matchers")
    if too_wide(matchers):
        raise RulesRefused("a silence must name what it mutes: this one would match every alert")
    if ends_at <= starts_at:
        raise RulesRefused("a silence must end after it starts")
    if ends_at - starts_at > SILENCE_MAX:
        raise RulesRefused(f"a silence lasts at most {SILENCE_MAX.days} days")


# -- rules: hysteresis, inhibitions, playbook bindings -------------------------------------


@dataclass(frozen=True, slots=True)
class Hysteresis:
    """A clear resolves only after it held ``hold`` and ``clean`` clean evaluations; a
    signal within ``reopen`` of the resolution reopens the same alert."""

    hold: timedelta = timedelta(minutes=5)
    clean: int = 1
    reopen: timedelta = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class Inhibition:
    """While an active alert matches ``source``, alerts matching ``target`` that agree with
    it on every ``equal`` dimension (and are no more severe) are muted."""

    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]

    def mutes(self, source: Alert, target: Alert) -> bool:
        if source.id == target.id or not source.status.active:
            return False
        if source.severity.order < target.severity.order:
            return False  # a warning never mutes a critical
        s, t = source.labels(), target.labels()
        if not (matches_all(self.source, s) and matches_all(self.target, t)):
            return False
        return all(s[d] and s[d] == t[d] for d in self.equal)


class Action(StrEnum):
    """What a playbook does, each through its own port (see ``risk.ports``)."""

    HOLD_SETTLEMENT = "hold_settlement"  # a provider's settlement postings held for review
    SUSPEND_GAME = "suspend_game"  # the gateway answers the protocol's "game disabled"
    SUSPEND_PROVIDER = "suspend_provider"
    FREEZE_COMMISSIONS = "freeze_commissions"  # a partner's commission payouts
    WITHDRAWAL_APPROVAL = "withdrawal_approval"  # a second approval for a player's withdrawals

    @property
    def needs(self) -> tuple[str, ...]:
        """The alert's labels that name the one thing it acts on: never more than that."""
        return _NEEDS[self]


_NEEDS = {
    Action.HOLD_SETTLEMENT: ("provider",),
    Action.SUSPEND_GAME: ("provider", "game"),
    Action.SUSPEND_PROVIDER: ("provider",),
    Action.FREEZE_COMMISSIONS: ("key",),  # partner:<id>
    Action.WITHDRAWAL_APPROVAL: ("key",),  # player:<id>
}


class Mode(StrEnum):
    DRY_RUN = "dry_run"  # says what it would do, changes nothing
    LIVE = "live"


@dataclass(frozen=True, slots=True)
class PlaybookRule:
    """A playbook bound to the alerts its matchers select (at least an exact kind)."""

    name: str
    action: Action
    match: tuple[Matcher, ...]
    mode: Mode = Mode.DRY_RUN
    approval: bool = False  # a person approves before it acts
    rate_max: int = 1  # at most this many actions ...
    rate_window: timedelta = timedelta(hours=1)  # ... in this window, for this playbook
    min_severity: Severity = Severity.CRITICAL


@dataclass(frozen=True, slots=True)
class AlertRules:
    version: int = 0  # 0: the built-in defaults, never saved
    hysteresis: Hysteresis = field(default_factory=Hysteresis)
    inhibitions: tuple[Inhibition, ...] = ()
    playbooks: tuple[PlaybookRule, ...] = ()

    def playbook(self, name: str) -> PlaybookRule | None:
        return next((p for p in self.playbooks if p.name == name), None)


OUTAGE_KIND = "risk.provider_outage"
DEFAULT_INHIBITIONS = (
    Inhibition(
        (Matcher("kind", OUTAGE_KIND),),
        (Matcher("kind", "risk.rtp*"),),
        ("provider", "region"),
    ),
    Inhibition(
        (Matcher("kind", OUTAGE_KIND),),
        (Matcher("kind", "risk.volume*"),),
        ("provider", "region"),
    ),
)
DEFAULT_RULES = AlertRules(inhibitions=DEFAULT_INHIBITIONS)


def _matchers(raw: object, where: str) -> tuple[Matcher, ...]:
    if not isinstance(raw, Mapping | list):
        raise RulesRefused(f"{where}: matchers are an object {{dimension: value}} or a list")
    if len(raw) > MATCHERS_MAX:
        raise RulesRefused(f"{where}: at most {MATCHERS_MAX} matchers")
    if isinstance(raw, Mapping):
        items = [Matcher(str(k), str(v)) for k, v in raw.items()]
    else:
        items = [Matcher.parse(str(x)) for x in raw]
    return tuple(items)


def _seconds(raw: object, where: str, *, minimum: int = 0) -> timedelta:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < minimum:
        raise RulesRefused(f"{where} must be a whole number of seconds >= {minimum}")
    return timedelta(seconds=raw)


def _count(raw: object, where: str, minimum: int = 1) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < minimum:
        raise RulesRefused(f"{where} must be a whole number >= {minimum}")
    return raw


def _known_keys(d: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    unknown = sorted(set(d) - set(allowed))
    if unknown:
        raise RulesRefused(f"{where}: unknown field(s) {', '.join(unknown)}")


def _playbook(d: object, n: int) -> PlaybookRule:
    where = f"playbooks[{n}]"
    if not isinstance(d, Mapping):
        raise RulesRefused(f"{where} is an object")
    _known_keys(
        d,
        ("name", "action", "match", "mode", "approval", "rate_max", "rate_window_s", "severity"),
        where,
    )
    name = d.get("name")
    if not isinstance(name, str) or not name or len(name) > 64:
        raise RulesRefused(f"{where}: a playbook needs a name of 1-64 characters")
    try:
        action = Action(str(d.get("action")))
        mode = Mode(d.get("mode", Mode.DRY_RUN))
        severity = Severity(d.get("severity", Severity.CRITICAL))
    except ValueError as exc:
        raise RulesRefused(f"{where} ({name}): {exc}") from None
    approval = d.get("approval", False)
    if not isinstance(approval, bool):
        raise RulesRefused(f"{where} ({name}).approval is true or false")
    match = _matchers(d.get("match", {}), where)
    kinds = [m for m in match if m.dimension == "kind"]
    if too_wide(match) or not kinds or any(m.value.endswith("*") for m in kinds):
        raise RulesRefused(
            f"{where} ({name}) would act on every alert: bind it to an exact alert kind "
            '(match {"kind": "risk.rtp_drift", ...})'
        )
    return PlaybookRule(
        name=name,
        action=action,
        match=match,
        mode=mode,
        approval=approval,
        rate_max=_count(d.get("rate_max", 1), f"{where}.rate_max"),
        rate_window=_seconds(d.get("rate_window_s", 3600), f"{where}.rate_window_s", minimum=1),
        min_severity=severity,
    )


def rules_from_document(doc: Mapping[str, Any], version: int) -> AlertRules:
    """Validated rules, or :class:`RulesRefused` naming the first problem."""
    if not isinstance(doc, Mapping):
        raise RulesRefused("alert rules are a JSON object")
    _known_keys(doc, ("hysteresis", "inhibitions", "playbooks"), "rules")
    h = doc.get("hysteresis", {})
    if not isinstance(h, Mapping):
        raise RulesRefused("hysteresis is an object")
    _known_keys(h, ("hold_s", "clean_evaluations", "reopen_s"), "hysteresis")
    hysteresis = Hysteresis(
        hold=_seconds(h.get("hold_s", 300), "hysteresis.hold_s"),
        clean=_count(h.get("clean_evaluations", 1), "hysteresis.clean_evaluations"),
        reopen=_seconds(h.get("reopen_s", 1800), "hysteresis.reopen_s"),
    )
    inhibitions = []
    raw_inhibitions = doc.get("inhibitions", None)
    raw_playbooks = doc.get("playbooks", [])
    for name, raw in (("inhibitions", raw_inhibitions), ("playbooks", raw_playbooks)):
        if raw is not None and not isinstance(raw, list):
            raise RulesRefused(f"{name} is a list")
        if raw is not None and len(raw) > RULES_MAX:
            raise RulesRefused(f"{name}: at most {RULES_MAX}")
    for n, i in enumerate(raw_inhibitions if raw_inhibitions is not None else []):
        where = f"inhibitions[{n}]"
        if not isinstance(i, Mapping):
            raise RulesRefused(f"{where} is an object")
        _known_keys(i, ("source", "target", "equal"), where)
        equal = i.get("equal", [])
        if not isinstance(equal, list) or not equal or len(equal) > len(DIMENSIONS):
            raise RulesRefused(f"{where}.equal names the dimensions source and target share")
        for d in equal:
            if not isinstance(d, str) or d not in DIMENSIONS or d in ("kind", "key"):
                raise RulesRefused(f"{where}.equal: unknown or unusable dimension {d!r}")
        source = _matchers(i.get("source", {}), f"{where}.source")
        target = _matchers(i.get("target", {}), f"{where}.target")
        if too_wide(source) or too_wide(target):
            raise RulesRefused(f"{where}: source and target must each name what they match")
        inhibitions.append(Inhibition(source, target, tuple(equal)))
    playbooks = [_playbook(p, n) for n, p in enumerate(raw_playbooks)]
    names = [p.name for p in playbooks]
    if len(set(names)) != len(names):
        raise RulesRefused("two playbooks share a name")
    return AlertRules(
        version=version,
        hysteresis=hysteresis,
        inhibitions=tuple(inhibitions) if raw_inhibitions is not None else DEFAULT_INHIBITIONS,
        playbooks=tuple(playbooks),
    )


# -- the lifecycle: pure transitions -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    """What one signal, clear, acknowledgement or sweep did to an alert: the audit action
    ("alert.opened", "alert.refreshed", "alert.reopened", "alert.clearing", "alert.resolved",
    "alert.acknowledged") or "" when nothing changed worth recording."""

    before: Alert | None
    after: Alert | None
    action: str

    @property
    def changed(self) -> bool:
        return bool(self.action)


def _from_signal(s: AlertSignal, alert_id: int) -> Alert:
    return Alert(
        id=alert_id, kind=s.kind, key=s.key, severity=s.severity, status=AlertStatus.OPEN,
        cause=s.cause, opened_at=s.at, updated_at=s.at, last_seen_at=s.at, region=s.region,
        provider=s.provider, operator=s.operator, game=s.game, money_at_risk=s.money_at_risk,
        currency=s.currency, confidence_permille=s.confidence_permille,
        evidence=dict(s.evidence), refs=tuple(s.refs),
    )  # fmt: skip


def on_signal(current: Alert | None, s: AlertSignal, rules: AlertRules, new_id: int) -> Change:
    """A signal: a new alert, the same one refreshed, or the same one reopened (inside its
    clearing spell, or within the reopen window after it resolved)."""
    if current is None or (
        current.status is AlertStatus.RESOLVED
        and current.resolved_at is not None
        and s.at - current.resolved_at > rules.hysteresis.reopen
    ):
        return Change(current, _from_signal(s, new_id), "alert.opened")
    refreshed = replace(
        current,
        severity=s.severity, cause=s.cause, updated_at=max(current.updated_at, s.at),
        last_seen_at=max(current.last_seen_at, s.at), region=s.region or current.region,
        provider=s.provider or current.provider, operator=s.operator or current.operator,
        game=s.game or current.game, money_at_risk=s.money_at_risk, currency=s.currency,
        confidence_permille=s.confidence_permille, evidence=dict(s.evidence),
        refs=tuple(s.refs), signals=current.signals + 1, clearing_since=None, clean=0,
    )  # fmt: skip
    if current.status is AlertStatus.RESOLVED:
        reopened = replace(
            refreshed,
            status=AlertStatus.OPEN,
            resolved_at=None,
            reopened=current.reopened + 1,
            acknowledged_by="",
            acknowledged_at=None,
        )
        return Change(current, reopened, "alert.reopened")
    if current.clearing_since is not None:
        return Change(current, replace(refreshed, reopened=current.reopened + 1), "alert.reopened")
    # A refresh that raises the severity is news; one that repeats the same is not audited
    # one by one (the alert's counter keeps them), or a detector's heartbeat floods the trail.
    action = "alert.escalated" if s.severity.order > current.severity.order else ""
    return Change(current, refreshed, action)


def on_clear(current: Alert | None, at: datetime, rules: AlertRules) -> Change:
    """A clean evaluation: starts or extends the clearing spell, and resolves the alert
    once the spell held long enough and saw enough clean evaluations."""
    if current is None or not current.status.active:
        return Change(current, current, "")
    since = current.clearing_since or at
    clearing = replace(current, clearing_since=since, clean=current.clean + 1, updated_at=at)
    resolved = _resolve_if_held(clearing, at, rules)
    if resolved is not None:
        return Change(current, resolved, "alert.resolved")
    action = "alert.clearing" if current.clearing_since is None else ""
    return Change(current, clearing, action)


def on_sweep(current: Alert, at: datetime, rules: AlertRules) -> Change:
    """Time passing: a clearing spell whose hold has run out resolves the alert."""
    if not current.status.active or current.clearing_since is None:
        return Change(current, current, "")
    resolved = _resolve_if_held(current, at, rules)
    if resolved is None:
        return Change(current, current, "")
    return Change(current, resolved, "alert.resolved")


def _resolve_if_held(a: Alert, at: datetime, rules: AlertRules) -> Alert | None:
    h = rules.hysteresis
    assert a.clearing_since is not None
    if at - a.clearing_since >= h.hold and a.clean >= h.clean:
        return replace(a, status=AlertStatus.RESOLVED, resolved_at=at, updated_at=at)
    return None


def on_acknowledge(current: Alert, by: str, at: datetime) -> Change:
    if current.status is not AlertStatus.OPEN:
        return Change(current, current, "")
    after = replace(
        current, status=AlertStatus.ACKNOWLEDGED, acknowledged_by=by, acknowledged_at=at,
        updated_at=at,
    )  # fmt: skip
    return Change(current, after, "alert.acknowledged")


# -- what is muted, and why ----------------------------------------------------------------


def muted_by(
    alert: Alert,
    active: Iterable[Alert],
    silences: Iterable[Silence],
    rules: AlertRules,
    at: datetime,
) -> str:
    """Why ``alert`` is not delivered now ("silence:<id>", "inhibited:<alert id>"), or ""."""
    for s in silences:
        if s.mutes(alert, at):
            return f"silence:{s.id}"
    for source in active:
        for rule in rules.inhibitions:
            if rule.mutes(source, alert):
                return f"inhibited:{source.id}"
    return ""

"""One Settings object, built once from the environment (prefix ``TALLY_``)."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from tally.events.appender import AppendLimits
from tally.kernel.errors import ConfigurationError
from tally.kernel.limits import AuthLimits, LedgerLimits, PayoutLimits
from tally.payouts.model import PayoutPolicy

Mode = Literal["embedded", "scaled"]
GATEWAY_HISTORY_LAG = 1_024  # see Settings.for_gateway
GATEWAY_CHECKPOINT_S = 0.2  # see Settings.for_gateway
DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/tally"
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
DEFAULT_NATS_STREAM = "TALLY_EVENTS"
DEFAULT_NATS_SUBJECTS = "tally.events"
DEFAULT_NATS_CONFLICTS = "TALLY_EVENT_CONFLICTS"
_STREAM_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SUBJECT_PREFIX = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")


@dataclass(frozen=True, slots=True)
class RailSettings:
    """The external payout rails (ADR 0022). A rail is on when its address is set: the
    bank-file rail when ``bank_file_dir`` is (with the debtor's name, IBAN and BIC), the
    PSP rail when ``psp_url`` is (with its webhook secret). Secrets are never logged."""

    bank_file_dir: Path | None = None
    bank_debtor_name: str = ""
    bank_debtor_iban: str = ""
    bank_debtor_bic: str = ""
    bank_currencies: tuple[str, ...] = ("EUR",)
    psp_url: str | None = None
    psp_currencies: tuple[str, ...] = ("EUR",)
    psp_api_key: str | None = field(default=None, repr=False)
    psp_webhook_secret: str | None = field(default=None, repr=False)

    @property
    def bank_file_on(self) -> bool:
        return self.bank_file_dir is not None

    @property
    def psp_on(self) -> bool:
        return self.psp_url is not None


@dataclass(frozen=True, slots=True)
class Settings:
    mode: Mode = "embedded"
    data_dir: Path = Path("data")
    # Embedded mode: the one SQLite file.
    sqlite_path: Path = Path("data/tally.sqlite")
    # Scaled mode: PostgreSQL for the ledger and read models.
    pg_dsn: str = DEFAULT_PG_DSN
    nats_url: str = DEFAULT_NATS_URL
    # Scaled mode: the event log's streams (the key index is "<stream>_KEYS").
    nats_stream: str = DEFAULT_NATS_STREAM
    nats_subjects: str = DEFAULT_NATS_SUBJECTS  # events go to <subjects>.<operator>.<key>
    nats_conflicts: str = DEFAULT_NATS_CONFLICTS
    log_level: str = "INFO"
    log_json: bool = False
    ledger_limits: LedgerLimits = field(default_factory=LedgerLimits)
    append_limits: AppendLimits = field(default_factory=AppendLimits)  # event-log appender
    # Back office: keys come from the environment (base64) or, for the embedded demo,
    # from files generated on first run in keys_dir (mode 0600). Never logged.
    keys_dir: Path = Path("data/keys")
    audit_key: bytes | None = field(default=None, repr=False)
    pseudonym_key: bytes | None = field(default=None, repr=False)
    secret_key: bytes | None = field(default=None, repr=False)
    export_signing_key_path: Path | None = None
    # Reconciliation's match rules per provider (a JSON document; see
    # docs/concepts/reconciliation.md); None: the built-in rules of the four providers.
    reconciliation_rules_path: Path | None = None
    # Where alerts are delivered: a JSON list of {"name", "kind": "webhook"|"alertmanager",
    # "url", "secret"?, "severity"?} (secrets: keep the file private). None: the API only.
    alert_sinks_path: Path | None = None
    # The back office's own address, for the links in deliveries (Alertmanager's
    # generatorURL points at /v1/alerts/<id> under it).
    public_url: str = "http://localhost:8000"
    auth_limits: AuthLimits = field(default_factory=AuthLimits)
    # Payouts: minimums, the maker-checker amount, the saga's timeouts (ADR 0021).
    payout_policy: PayoutPolicy = field(default_factory=PayoutPolicy)
    payout_limits: PayoutLimits = field(default_factory=PayoutLimits)
    # Payouts' external rails (ADR 0022): which are on and how they are reached.
    rails: RailSettings = field(default_factory=lambda: RailSettings())
    # Reverse proxies whose X-Forwarded-For names the client (addresses or networks);
    # empty: the header is ignored and the connection's address is the client's.
    trusted_proxies: tuple[str, ...] = ()

    def for_gateway(self) -> Settings:
        """These settings for a wallet gateway process (ADR 0011).

        Its ledger and its event-log appender commit what is queued without waiting for
        more: callbacks reach them already gathered in batches, so a wait would only add
        latency (at 1,500 callbacks/s, p50 21 -> 6 ms). Its embedded history index takes
        in transfers every 1,024 instead of 32,768, in one piece: each fill holds the
        file's write lock a few ms (100-170 ms before), which is what a callback's
        latency feels (ADR 0009: at 3,000/s, p99 10.7 ms on average over six alternated
        runs against 12.9 for 4 pieces every 4,096). Its indexer
        thread checkpoints the WAL every 0.2 s: SQLite's own checkpoint runs inside the
        commit that crosses 64 MiB of WAL, which a gateway writes in about a second, and
        that commit (and the callbacks waiting on it) stalled 20-25 ms.
        """
        return replace(
            self,
            ledger_limits=replace(
                self.ledger_limits,
                batch_max_wait_s=0.0,
                history_index_lag=GATEWAY_HISTORY_LAG,
                checkpoint_behind_s=GATEWAY_CHECKPOINT_S,
            ),
            append_limits=replace(self.append_limits, batch_wait_s=0.0),
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        mode = env.get("TALLY_MODE", "embedded")
        if mode not in ("embedded", "scaled"):
            raise ConfigurationError(f"TALLY_MODE must be 'embedded' or 'scaled', not {mode!r}")
        data_dir = Path(env.get("TALLY_DATA_DIR", "data"))
        return cls(
            mode=mode,  # type: ignore[arg-type]  # checked just above
            data_dir=data_dir,
            sqlite_path=Path(env.get("TALLY_SQLITE_PATH", str(data_dir / "tally.sqlite"))),
            pg_dsn=env.get("TALLY_PG_DSN", DEFAULT_PG_DSN),
            nats_url=env.get("TALLY_NATS_URL", DEFAULT_NATS_URL),
            nats_stream=_name(env, "TALLY_NATS_STREAM", DEFAULT_NATS_STREAM, _STREAM_NAME),
            nats_subjects=_name(env, "TALLY_NATS_SUBJECTS", DEFAULT_NATS_SUBJECTS, _SUBJECT_PREFIX),
            nats_conflicts=_name(env, "TALLY_NATS_CONFLICTS", DEFAULT_NATS_CONFLICTS, _STREAM_NAME),
            log_level=env.get("TALLY_LOG_LEVEL", "INFO").upper(),
            log_json=env.get("TALLY_LOG_JSON", "0") in ("1", "true", "yes"),
            keys_dir=Path(env.get("TALLY_KEYS_DIR", str(data_dir / "keys"))),
            audit_key=_key(env, "TALLY_AUDIT_KEY"),
            pseudonym_key=_key(env, "TALLY_PSEUDONYM_KEY"),
            secret_key=_key(env, "TALLY_SECRET_KEY"),
            export_signing_key_path=_path(env, "TALLY_EXPORT_SIGNING_KEY_PATH"),
            reconciliation_rules_path=_path(env, "TALLY_RECONCILIATION_RULES"),
            alert_sinks_path=_path(env, "TALLY_ALERT_SINKS"),
            public_url=env.get("TALLY_PUBLIC_URL", "http://localhost:8000"),
            trusted_proxies=_networks(env, "TALLY_TRUSTED_PROXIES"),
            payout_policy=_payout_policy(env),
            rails=_rails(env),
        )


def _payout_policy(env: Mapping[str, str]) -> PayoutPolicy:
    """``TALLY_PAYOUT_APPROVAL_ABOVE``: minor units a run may pay in any currency without
    a checker; ``TALLY_PAYOUT_MINIMUM``: the smallest net paid (minor units)."""

    def minor(name: str, default: int) -> int:
        text = env.get(name)
        if not text:
            return default
        if not text.isdigit():
            raise ConfigurationError(f"{name} must be a whole number of minor units")
        return int(text)

    base = PayoutPolicy()
    return replace(
        base,
        approval_above_default_minor=minor(
            "TALLY_PAYOUT_APPROVAL_ABOVE", base.approval_above_default_minor
        ),
        minimum_default_minor=minor("TALLY_PAYOUT_MINIMUM", base.minimum_default_minor),
    )


_CURRENCY = re.compile(r"[A-Z]{3}")


def _currencies(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    text = env.get(name) or "EUR"
    found = tuple(part.strip().upper() for part in text.split(",") if part.strip())
    for code in found:
        if not _CURRENCY.fullmatch(code):
            raise ConfigurationError(f"{name}: {code!r} is not an ISO 4217 currency code")
    if not found:
        raise ConfigurationError(f"{name} names no currency")
    return found


def _secret(env: Mapping[str, str], name: str) -> str | None:
    """A secret from ``NAME`` or, better, from the file ``NAME_FILE`` names (a mounted
    secret, mode 0600), never both."""
    text = env.get(name)
    path = env.get(f"{name}_FILE")
    if text and path:
        raise ConfigurationError(f"set {name} or {name}_FILE, not both")
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8").strip()
        except OSError as error:
            raise ConfigurationError(f"{name}_FILE: cannot read {path}: {error}") from None
    return text or None


def _rails(env: Mapping[str, str]) -> RailSettings:
    """``TALLY_BANK_FILE_DIR`` (+ ``TALLY_BANK_DEBTOR_NAME``/``_IBAN``/``_BIC``,
    ``TALLY_BANK_CURRENCIES``) turns the bank-file rail on; ``TALLY_PSP_URL`` (+
    ``TALLY_PSP_WEBHOOK_SECRET``, ``TALLY_PSP_API_KEY``, ``TALLY_PSP_CURRENCIES``) the
    PSP rail."""
    bank_dir = _path(env, "TALLY_BANK_FILE_DIR")
    name = env.get("TALLY_BANK_DEBTOR_NAME", "")
    iban = "".join(env.get("TALLY_BANK_DEBTOR_IBAN", "").split()).upper()
    bic = env.get("TALLY_BANK_DEBTOR_BIC", "").strip().upper()
    if bank_dir is not None and not (name and iban and bic):
        raise ConfigurationError(
            "TALLY_BANK_FILE_DIR needs TALLY_BANK_DEBTOR_NAME, TALLY_BANK_DEBTOR_IBAN and "
            "TALLY_BANK_DEBTOR_BIC"
        )
    psp_url = env.get("TALLY_PSP_URL") or None
    secret = _secret(env, "TALLY_PSP_WEBHOOK_SECRET")
    if psp_url is not None:
        if not psp_url.startswith(("http://", "https://")):
            raise ConfigurationError("TALLY_PSP_URL must be an http(s) URL")
        if not secret:
            raise ConfigurationError("TALLY_PSP_URL needs TALLY_PSP_WEBHOOK_SECRET(_FILE)")
    return RailSettings(
        bank_file_dir=bank_dir,
        bank_debtor_name=name,
        bank_debtor_iban=iban,
        bank_debtor_bic=bic,
        bank_currencies=_currencies(env, "TALLY_BANK_CURRENCIES"),
        psp_url=psp_url,
        psp_currencies=_currencies(env, "TALLY_PSP_CURRENCIES"),
        psp_api_key=_secret(env, "TALLY_PSP_API_KEY"),
        psp_webhook_secret=secret,
    )


def _key(env: Mapping[str, str], name: str) -> bytes | None:
    text = env.get(name)
    if not text:
        return None
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(f"{name} must be base64") from None
    if len(key) != 32:
        raise ConfigurationError(f"{name} must decode to 32 bytes")
    return key


def _name(env: Mapping[str, str], name: str, default: str, shape: re.Pattern[str]) -> str:
    """A stream name or subject prefix: no spaces, dots only between tokens, no wildcards."""
    text = env.get(name) or default
    if not shape.fullmatch(text):
        raise ConfigurationError(f"{name} must match {shape.pattern}, not {text!r}")
    return text


def _path(env: Mapping[str, str], name: str) -> Path | None:
    text = env.get(name)
    return Path(text) if text else None


def _networks(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Comma-separated addresses or networks (``10.0.0.5``, ``10.0.0.0/24``), each checked."""
    found: list[str] = []
    for item in (part.strip() for part in env.get(name, "").split(",")):
        if not item:
            continue
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ConfigurationError(f"{name}: {item!r} is not an address or network") from None
        found.append(item)
    return tuple(found)

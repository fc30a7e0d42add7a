"""The one composition root: the only module that knows both ports and adapters."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from tally.app.keys import Keys, load_keys
from tally.app.metrics import Metrics
from tally.app.scope import PartnerTreeScope
from tally.app.settings import Settings
from tally.audit.chain import Sealer
from tally.audit.ports import AuditStore
from tally.audit.service import AuditService
from tally.auth.ports import AuthStore
from tally.auth.scope import ScopeResolver
from tally.auth.service import AuthService
from tally.events.appender import AppendLimits, BatchingAppender
from tally.events.ports import EventLog
from tally.exports.bundle import StatementFile
from tally.exports.ports import TransferSource
from tally.exports.service import ExportService
from tally.kernel.clock import Clock, SystemClock
from tally.ledger.ports import LedgerStore
from tally.ledger.service import LedgerService
from tally.providers.registry import Registry
from tally.quarantine.inputs import InputQuarantine
from tally.quarantine.ledger import LedgerQuarantine
from tally.security.passwords import PasswordHasher
from tally.security.provider_secrets import ProviderSecrets, SealedSecretStore
from tally.security.pseudonym import Pseudonymiser
from tally.security.secretbox import SecretBox
from tally.security.signing import Signer
from tally.settlement.config import SettlementConfig
from tally.settlement.ports import ConfigDocuments, EventSource, SettlementStore

if TYPE_CHECKING:
    from tally.adapters.nats.events import StreamNames
    from tally.ingest.feeds import FeedService
    from tally.ingest.files import FileImporter, ImportProgress
    from tally.providers.gateway import Gateway
    from tally.providers.wallet import WalletMarks, WalletService
    from tally.quarantine.redrive import QuarantineDesk
    from tally.reconciliation.ports import ReconciliationStore
    from tally.reconciliation.service import ReconciliationService


def build_ledger_store(settings: Settings) -> LedgerStore:
    if settings.mode == "scaled":
        from tally.adapters.postgres.ledger import PostgresLedgerStore

        return PostgresLedgerStore(settings.pg_dsn, settings.ledger_limits)
    from tally.adapters.sqlite.ledger import SqliteLedgerStore

    settings.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteLedgerStore(settings.sqlite_path, settings.ledger_limits)


def build_settlement(
    settings: Settings, ledger: LedgerStore
) -> tuple[ConfigDocuments, SettlementStore]:
    """Settlement configuration and state, in the same database as the ledger."""
    if settings.mode == "scaled":
        from tally.adapters.postgres.ledger import PostgresLedgerStore
        from tally.adapters.postgres.settlement import (
            PostgresConfigDocuments,
            PostgresSettlementStore,
        )

        assert isinstance(ledger, PostgresLedgerStore)
        return PostgresConfigDocuments(settings.pg_dsn), PostgresSettlementStore(
            ledger, settings.pg_dsn
        )
    from tally.adapters.sqlite.ledger import SqliteLedgerStore
    from tally.adapters.sqlite.settlement import SqliteConfigDocuments, SqliteSettlementStore

    assert isinstance(ledger, SqliteLedgerStore)
    return SqliteConfigDocuments(ledger.path), SqliteSettlementStore(ledger)


@dataclass
class App:
    """Everything a running Tally process holds; entry points build one and close it."""

    settings: Settings
    clock: Clock
    ledger_store: LedgerStore
    ledger: LedgerService
    settlement_documents: ConfigDocuments
    settlement_config: SettlementConfig
    settlement_store: SettlementStore
    _started: bool = field(default=False, repr=False)

    def start(self) -> App:
        if not self._started:
            self.ledger.start()
            self._started = True
        return self

    def close(self) -> None:
        if self._started:
            self.ledger.stop()
            self._started = False
        for part in (self.settlement_store, self.settlement_documents, self.ledger_store):
            close = getattr(part, "close", None)
            if close is not None:
                close()

    def __enter__(self) -> App:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def build_app(
    settings: Settings,
    clock: Clock | None = None,
    *,
    on_commit: Callable[[int, float], None] | None = None,
) -> App:
    clock = clock or SystemClock()
    store = build_ledger_store(settings)
    ledger = LedgerService(store, clock, settings.ledger_limits, on_commit=on_commit)
    documents, settlement_store = build_settlement(settings, store)
    return App(
        settings=settings,
        clock=clock,
        ledger_store=store,
        ledger=ledger,
        settlement_documents=documents,
        settlement_config=SettlementConfig(documents),
        settlement_store=settlement_store,
    )


# -- back office: users, API keys, audit trail, exports ----------------------------------


class BackofficeStore(AuthStore, AuditStore, SealedSecretStore, Protocol):
    def ping(self) -> None: ...

    def close(self) -> None: ...


def build_backoffice_store(settings: Settings, sealer: Sealer) -> BackofficeStore:
    if settings.mode == "scaled":
        from tally.adapters.postgres.backoffice import PostgresBackofficeStore

        return PostgresBackofficeStore(settings.pg_dsn, sealer)
    from tally.adapters.sqlite.backoffice import SqliteBackofficeStore

    settings.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteBackofficeStore(settings.sqlite_path, sealer)


def build_transfer_source(settings: Settings) -> TransferSource:
    if settings.mode == "scaled":
        from tally.adapters.postgres.ledger_read import PostgresTransferSource

        return PostgresTransferSource(settings.pg_dsn)
    from tally.adapters.sqlite.ledger_read import SqliteTransferSource

    return SqliteTransferSource(settings.sqlite_path)


@dataclass
class Backoffice:
    """The staff-facing side of a running process: who may do what, and the audit trail."""

    store: BackofficeStore
    auth: AuthService
    audit: AuditService
    scope: ScopeResolver
    pseudonymiser: Pseudonymiser
    signer: Signer
    secret_box: SecretBox
    metrics: Metrics
    exports: ExportService
    quarantine: LedgerQuarantine
    provider_secrets: ProviderSecrets
    ingest: Ingest

    def close(self) -> None:
        self.exports.source.close()
        self.store.close()
        self.ingest.close()


@dataclass
class Ingest:
    """The bulk ways in (feeds, batch reports) and the input quarantine's desk."""

    log: EventLog
    inputs: InputQuarantine
    desk: QuarantineDesk
    feeds: FeedService
    importer: FileImporter

    def close(self) -> None:
        for part in (self.log, self.inputs, self.importer.progress):
            close = getattr(part, "close", None)
            if close is not None:
                close()


def build_ingest(
    settings: Settings,
    clock: Clock,
    audit: AuditStore,
    *,
    log: EventLog | None = None,
    inputs: InputQuarantine | None = None,
    progress: ImportProgress | None = None,
) -> Ingest:
    from tally.ingest.feeds import FeedService
    from tally.ingest.files import FileImporter
    from tally.quarantine.redrive import QuarantineDesk

    log = log or build_event_log(settings)
    inputs = inputs or build_input_quarantine(settings)
    importer = FileImporter(log, inputs, progress or build_import_progress(settings), clock)
    feeds = FeedService(log, inputs, clock)
    desk = QuarantineDesk(inputs, audit, clock)
    desk.register("file", importer.redrive)
    desk.register("feed", feeds.redrive)
    return Ingest(log, inputs, desk, feeds, importer)


def _statement_files(app: App) -> list[StatementFile]:
    return [
        StatementFile(s.contract_id, s.operator, s.period, s.sha256, s.closed_at, s.document, s.csv)
        for s in app.settlement_store.statements()
    ]


def _audited_state(store: BackofficeStore, source: TransferSource) -> str:
    """What the stores hold that means a trail was written ("users, transfers"), or ""."""
    held = []
    if store.list_users(limit=1).items:
        held.append("users")
    if source.transfers_recorded_between(_EPOCH, _FAR_FUTURE, limit=1):
        held.append("transfers")
    return " and ".join(held)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FAR_FUTURE = datetime(9000, 1, 1, tzinfo=UTC)


def build_backoffice(
    app: App,
    *,
    metrics: Metrics | None = None,
    hasher: PasswordHasher | None = None,
    store: BackofficeStore | None = None,
    keys: Keys | None = None,
    transfer_source: TransferSource | None = None,
    ingest: Ingest | None = None,
) -> Backoffice:
    settings = app.settings
    keys = keys or load_keys(settings)
    sealer = Sealer(keys.audit)
    store = store or build_backoffice_store(settings, sealer)
    box = SecretBox(keys.secret)
    pseudonymiser = Pseudonymiser(keys.pseudonym)
    signer = Signer(keys.signing_pem)
    exports = ExportService(
        transfer_source or build_transfer_source(settings),
        store,
        pseudonymiser,
        signer,
        app.clock,
        statements=lambda: _statement_files(app),
    )
    auth = AuthService(store, app.clock, hasher or PasswordHasher(), box, settings.auth_limits)
    metrics = metrics or Metrics()
    metrics.publish_audit_head(store.audit_head)
    return Backoffice(
        store=store,
        auth=auth,
        audit=AuditService(store, sealer, kept=lambda: _audited_state(store, exports.source)),
        scope=PartnerTreeScope(app.settlement_config, app.clock),
        pseudonymiser=pseudonymiser,
        signer=signer,
        secret_box=box,
        metrics=metrics,
        exports=exports,
        quarantine=LedgerQuarantine(app.ledger, store, app.clock),
        provider_secrets=ProviderSecrets(store, box, app.clock),
        ingest=ingest or build_ingest(settings, app.clock, store),
    )


# -- provider gateway: wallet callbacks ----------------------------------------------------


def build_event_log(settings: Settings) -> EventLog:
    """Embedded: a table in the SQLite file. Scaled: a NATS JetStream stream."""
    if settings.mode == "scaled":
        from tally.adapters.nats.events import JetStreamEventLog

        return JetStreamEventLog(settings.nats_url, _stream_names(settings))
    from tally.adapters.sqlite.events import SqliteEventLog

    settings.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteEventLog(settings.sqlite_path)


def _stream_names(settings: Settings) -> StreamNames:
    from tally.adapters.nats.events import StreamNames

    return StreamNames(settings.nats_stream, settings.nats_subjects, settings.nats_conflicts)


class ClosableSource(EventSource, Protocol):
    def close(self) -> None: ...


def build_event_source(settings: Settings) -> ClosableSource:
    """What the settlement worker reads: the log, or JetStream's durable consumer."""
    if settings.mode == "scaled":
        from tally.adapters.nats.source import JetStreamSource

        return JetStreamSource(settings.nats_url, _stream_names(settings))
    from tally.adapters.sqlite.events import SqliteEventLog
    from tally.events.settle import LogSource

    return LogSource(SqliteEventLog(settings.sqlite_path))


def build_input_quarantine(settings: Settings) -> InputQuarantine:
    if settings.mode == "scaled":
        from tally.adapters.postgres.quarantine import PostgresInputQuarantine

        return PostgresInputQuarantine(settings.pg_dsn)
    from tally.adapters.sqlite.quarantine import SqliteInputQuarantine

    settings.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteInputQuarantine(settings.sqlite_path)


def build_import_progress(settings: Settings) -> ImportProgress:
    if settings.mode == "scaled":
        from tally.adapters.postgres.quarantine import PostgresImportProgress

        return PostgresImportProgress(settings.pg_dsn)
    from tally.adapters.sqlite.quarantine import SqliteImportProgress

    settings.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteImportProgress(settings.sqlite_path)


def build_wallet_marks(settings: Settings) -> WalletMarks:
    if settings.mode == "scaled":
        from tally.adapters.postgres.wallet import PostgresWalletMarks

        return PostgresWalletMarks(settings.pg_dsn)
    from tally.adapters.sqlite.wallet import SqliteWalletMarks

    return SqliteWalletMarks(settings.sqlite_path)


@dataclass
class WalletGateway:
    """The provider-facing side of a running process: adapters, wallet, event log."""

    gateway: Gateway
    wallet: WalletService
    appender: BatchingAppender
    log: EventLog
    marks: WalletMarks
    owns_log: bool = True  # False: the log was handed in, and its giver closes it

    def close(self) -> None:
        self.appender.stop()
        for part in (self.marks, self.log if self.owns_log else None):
            close = getattr(part, "close", None)
            if close is not None:
                close()


def build_wallet_gateway(
    app: App,
    *,
    quarantine: InputQuarantine,
    secrets: Callable[[str, str], str | None],
    session_key: bytes,
    registry: Registry | None = None,
    log: EventLog | None = None,
    append_limits: AppendLimits | None = None,
    game_type: Callable[[str, str], str] | None = None,
) -> WalletGateway:
    """``secrets(provider, name)`` opens a provider secret (``ProviderSecrets.get``)."""
    from tally.providers.gateway import Gateway
    from tally.providers.sessions import SessionTokens
    from tally.providers.wallet import WalletService

    settings = app.settings
    owns_log = log is None
    log = log or build_event_log(settings)
    appender = BatchingAppender(log, append_limits or settings.append_limits).start()
    marks = build_wallet_marks(settings)
    wallet = WalletService(app.ledger, appender, marks, quarantine, app.clock, game_type=game_type)
    gateway = Gateway(
        registry or Registry.each_protocol_as_itself(),
        wallet,
        secrets,
        quarantine,
        app.clock,
        SessionTokens(session_key),
    )
    return WalletGateway(gateway, wallet, appender, log, marks, owns_log)


def backoffice_wallet_gateway(
    app: App,
    backoffice: Backoffice,
    registry: Registry,
    *,
    game_type: Callable[[str, str], str] | None = None,
) -> WalletGateway:
    """The wallet gateway on a back office's quarantine, provider secrets and event log."""
    return build_wallet_gateway(
        app,
        quarantine=backoffice.ingest.inputs,
        secrets=backoffice.provider_secrets.get,
        # Its own key derived inside SessionTokens, so a token never opens anything else.
        session_key=load_keys(app.settings).secret,
        registry=registry,
        log=backoffice.ingest.log,
        game_type=game_type,
    )


def build_reconciliation_store(settings: Settings) -> ReconciliationStore:
    if settings.mode == "scaled":
        from tally.adapters.postgres.reconciliation import PostgresReconciliationStore

        return PostgresReconciliationStore(settings.pg_dsn)
    from tally.adapters.sqlite.reconciliation import SqliteReconciliationStore

    settings.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteReconciliationStore(settings.sqlite_path)


def build_reconciliation(settings: Settings, clock: Clock, ingest: Ingest) -> ReconciliationService:
    """Reconciliation on the deployment's stores: Tally's side from the event log (ADR
    0019), refused input into the input quarantine, rules from configuration."""
    import json

    from tally.reconciliation.model import rules_from_document
    from tally.reconciliation.service import ReconciliationService
    from tally.reconciliation.tally_side import LogTallySide

    rules = None
    if settings.reconciliation_rules_path is not None:
        rules = rules_from_document(
            json.loads(settings.reconciliation_rules_path.read_text(encoding="utf-8"))
        )
    return ReconciliationService(
        build_reconciliation_store(settings), LogTallySide(ingest.log), ingest.inputs, clock, rules
    )

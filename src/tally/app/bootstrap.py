"""The one composition root: the only module that knows both ports and adapters."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from tally.app.keys import Keys, load_keys
from tally.app.metrics import Metrics, ProcessState
from tally.app.scope import PartnerTreeScope
from tally.app.settings import Settings
from tally.audit.chain import Sealer
from tally.audit.ports import AuditStore
from tally.audit.service import Auditing, AuditService
from tally.auth.ports import AuthStore
from tally.auth.scope import ScopeResolver
from tally.auth.service import AuthService
from tally.events.appender import AppendLimits, BatchingAppender
from tally.events.ports import EventLog
from tally.exports.bundle import StatementFile
from tally.exports.ports import TransferSource
from tally.exports.service import ExportService
from tally.kernel.alerts import AlertSignal, AlertSink
from tally.kernel.clock import Clock, SystemClock
from tally.ledger.ports import LedgerStore
from tally.ledger.service import LedgerService
from tally.lifecycle.ports import PartitionSource
from tally.lifecycle.service import (
    ArchiveService,
    BackupService,
    MaintenanceService,
    PartitionMaintainer,
    RetentionService,
    RetentionStore,
)
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
    from tally.kernel.alerts import AlertSink
    from tally.payouts.ports import PayoutStore
    from tally.payouts.rails import Rail
    from tally.payouts.service import PayoutService
    from tally.providers.gateway import Gateway
    from tally.quarantine.redrive import QuarantineDesk
    from tally.reconciliation.ports import ReconciliationStore
    from tally.reconciliation.service import ReconciliationService
    from tally.risk.alerts import AlertService
    from tally.risk.delivery import Deliverer
    from tally.risk.forecast import Forecasts
    from tally.risk.playbooks import Playbooks, RiskSwitches
    from tally.risk.ports import AlertStore, Transport
    from tally.risk.watch import RiskWatch
    from tally.risk.watch_ports import RiskStore
    from tally.wallet.ports import WalletMarks
    from tally.wallet.service import WalletService


def build_ledger_store(settings: Settings) -> LedgerStore:
    return mode_parts(settings).ledger_store()


def build_settlement(
    settings: Settings, ledger: LedgerStore
) -> tuple[ConfigDocuments, SettlementStore]:
    """Settlement configuration and state, in the same database as the ledger."""
    return mode_parts(settings).settlement(ledger)


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
        self.settlement_store.close()
        self.settlement_documents.close()
        self.ledger_store.close()

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
    return mode_parts(settings).backoffice_store(sealer)


def build_transfer_source(settings: Settings) -> TransferSource:
    return mode_parts(settings).transfer_source()


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
    # Reconciliation's service is made when first asked for: most processes never open
    # its store.
    reconciliation_maker: Callable[[], ReconciliationService] | None = field(
        default=None, repr=False
    )
    _reconciliation: ReconciliationService | None = field(default=None, repr=False)
    # Payouts likewise: made when first asked for.
    payouts_maker: Callable[[], PayoutService] | None = field(default=None, repr=False)
    _payouts: PayoutService | None = field(default=None, repr=False)
    # Re-entrant: one context's maker may ask for another's (payouts signal to risk's alerts).
    _made: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @property
    def payouts(self) -> PayoutService:
        with self._made:
            if self._payouts is None:
                assert self.payouts_maker is not None, "built without payouts"
                self._payouts = self.payouts_maker()
            return self._payouts

    # Risk (alerts, playbooks, their switches) likewise, on first use.
    risk_maker: Callable[[], Risk] | None = field(default=None, repr=False)
    _risk: Risk | None = field(default=None, repr=False)

    @property
    def risk(self) -> Risk:
        with self._made:
            if self._risk is None:
                assert self.risk_maker is not None, "built without risk"
                self._risk = self.risk_maker()
            return self._risk

    @property
    def alerts(self) -> AlertSink:
        """The deployment's alert sink: what any context signals conditions through."""
        return self.risk.alerts

    @property
    def reconciliation(self) -> ReconciliationService:
        with self._made:
            if self._reconciliation is None:
                assert self.reconciliation_maker is not None, "built without reconciliation"
                self._reconciliation = self.reconciliation_maker()
            return self._reconciliation

    def close(self) -> None:
        self.exports.source.close()
        with self._made:
            if self._reconciliation is not None:
                self._reconciliation.store.close()
                self._reconciliation = None
            if self._payouts is not None:
                self._payouts.store.close()
                self._payouts = None
            if self._risk is not None:
                self._risk.close()
                self._risk = None
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
        self.log.close()
        self.inputs.close()
        self.importer.progress.close()


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


def _answers(check: Callable[[], object]) -> bool:
    try:
        check()
    except Exception:  # noqa: BLE001 - any failure means "does not answer"
        return False
    return True


def process_state(app: App, store: BackofficeStore, ingest: Ingest) -> ProcessState:
    """What the process holds now: the metrics publish it at each scrape and the console
    shows it (one reading, two faces)."""
    counts = ingest.inputs.counts()
    open_inputs = sum(n for (status, _), n in counts.items() if status == "open")
    lag = max(0, ingest.log.head() - app.settlement_store.position(SETTLEMENT_CONSUMER))
    return ProcessState(
        quarantine_open=open_inputs,
        settlement_lag=lag,
        writer_queue=app.ledger.queue_depth(),
        stores_up={
            "ledger": _answers(lambda: app.ledger.account("__readiness_probe__")),
            "backoffice": _answers(store.ping),
        },
    )


# The settlement worker's consumer name (its position in the event log).
SETTLEMENT_CONSUMER = "settlement"
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
    reconciliation_store: Callable[[], ReconciliationStore] | None = None,
    alerts: AlertSink | None = None,
    rails: Callable[[App], dict[str, Rail]] | None = None,
    payout_store: Callable[[], PayoutStore] | None = None,
    risk_store: Callable[[], AlertStore] | None = None,
) -> Backoffice:
    """``reconciliation_store`` makes reconciliation's store (else the mode's own), when
    reconciliation is first asked for; ``payout_store`` likewise for payouts, whose
    ``rails`` (by name, beside the internal one) are made then too, and ``risk_store``
    the alerts store. ``alerts`` replaces the risk context's sink (tests)."""
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
    ingest = ingest or build_ingest(settings, app.clock, store)
    bo_ingest = ingest
    metrics.publish_state(lambda: process_state(app, store, bo_ingest))

    def reconciliation() -> ReconciliationService:
        return build_reconciliation(
            settings,
            app.clock,
            bo_ingest,
            alerts=alerts if alerts is not None else backoffice.alerts,
            store=reconciliation_store() if reconciliation_store else None,
            ledger=app.ledger,
        )

    def payouts() -> PayoutService:
        return build_payouts(
            app,
            auth,
            store,
            alerts=alerts if alerts is not None else backoffice.alerts,
            rails=rails(app) if rails else build_rails(settings, app.clock),
            store=payout_store() if payout_store else None,
        )

    def risk() -> Risk:
        return build_risk(settings, app.clock, store, store=risk_store() if risk_store else None)

    backoffice = Backoffice(
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
        ingest=ingest,
        reconciliation_maker=reconciliation,
        payouts_maker=payouts,
        risk_maker=risk,
    )
    return backoffice


# -- provider gateway: wallet callbacks ----------------------------------------------------


def build_event_log(settings: Settings) -> EventLog:
    """Embedded: a table in the SQLite file. Scaled: a NATS JetStream stream."""
    return mode_parts(settings).event_log()


def _stream_names(settings: Settings) -> StreamNames:
    from tally.adapters.nats.events import StreamNames

    return StreamNames(settings.nats_stream, settings.nats_subjects, settings.nats_conflicts)


class ClosableSource(EventSource, Protocol):
    def close(self) -> None: ...


def build_event_source(settings: Settings) -> ClosableSource:
    """What the settlement worker reads: the log, or JetStream's durable consumer."""
    return mode_parts(settings).event_source()


def build_input_quarantine(settings: Settings) -> InputQuarantine:
    return mode_parts(settings).input_quarantine()


def build_import_progress(settings: Settings) -> ImportProgress:
    return mode_parts(settings).import_progress()


def build_wallet_marks(settings: Settings) -> WalletMarks:
    return mode_parts(settings).wallet_marks()


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
        self.marks.close()
        if self.owns_log:
            self.log.close()


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
    suspended: Callable[[str, str], bool] | None = None,
) -> WalletGateway:
    """``secrets(provider, name)`` opens a provider secret (``ProviderSecrets.get``);
    ``suspended(provider, game)`` is risk's answer to whether new play there is refused."""
    from tally.providers.gateway import Gateway
    from tally.providers.sessions import SessionTokens
    from tally.wallet.service import WalletService

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
        suspended=suspended,
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
        # A game or provider a risk playbook suspended gets the protocol's "game disabled".
        suspended=backoffice.risk.switches.suspended,
    )


# -- the mode: picked once, one factory per mode -------------------------------------------


@dataclass(frozen=True, slots=True)
class ModeParts:
    """How a mode makes each of its stores. Each is made when first asked for (a gateway
    never opens the back office's store), and each adapter is imported then, so an
    embedded process never imports the PostgreSQL or NATS drivers."""

    ledger_store: Callable[[], LedgerStore]
    # Settlement lives in the same database as the ledger it is handed.
    settlement: Callable[[LedgerStore], tuple[ConfigDocuments, SettlementStore]]
    backoffice_store: Callable[[Sealer], BackofficeStore]
    transfer_source: Callable[[], TransferSource]
    event_log: Callable[[], EventLog]
    event_source: Callable[[], ClosableSource]
    input_quarantine: Callable[[], InputQuarantine]
    import_progress: Callable[[], ImportProgress]
    wallet_marks: Callable[[], WalletMarks]
    reconciliation_store: Callable[[], ReconciliationStore]
    # Payouts live in the ledger's database: a payout's state and its transfers commit
    # together (ADR 0021).
    payout_store: Callable[[LedgerStore], PayoutStore]
    # Risk's alerts, silences, rules, outbox, playbook actions and switches (the store
    # behind the deployment's AlertSink: see build_risk).
    alert_store: Callable[[], AlertStore]
    risk_store: Callable[[], RiskStore]
    # The data lifecycle's view of the store (ADR 0023).
    lifecycle: Callable[[], LifecycleParts]


@dataclass(frozen=True)
class LifecycleParts:
    """What the lifecycle reads partitions from, and the embedded file (None when scaled:
    backups and retention of the embedded store need it)."""

    source: PartitionSource | None
    sqlite_file: Path | None
    retention: Callable[[], RetentionStore]
    # Partitions made ahead: PostgreSQL's only (SQLite has no partitions).
    maintainer: PartitionMaintainer | None = None


def mode_parts(settings: Settings) -> ModeParts:
    """The one place that reads ``settings.mode``."""
    return _scaled_parts(settings) if settings.mode == "scaled" else _embedded_parts(settings)


def _embedded_parts(settings: Settings) -> ModeParts:  # noqa: C901 (one factory per store)
    """Everything in the one SQLite file."""
    path = settings.sqlite_path

    def in_place() -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def ledger_store() -> LedgerStore:
        from tally.adapters.sqlite.ledger import SqliteLedgerStore

        return SqliteLedgerStore(in_place(), settings.ledger_limits)

    def settlement(ledger: LedgerStore) -> tuple[ConfigDocuments, SettlementStore]:
        from tally.adapters.sqlite.ledger import SqliteLedgerStore
        from tally.adapters.sqlite.settlement import SqliteConfigDocuments, SqliteSettlementStore

        assert isinstance(ledger, SqliteLedgerStore)
        return SqliteConfigDocuments(ledger.path), SqliteSettlementStore(ledger)

    def backoffice_store(sealer: Sealer) -> BackofficeStore:
        from tally.adapters.sqlite.backoffice import SqliteBackofficeStore

        return SqliteBackofficeStore(in_place(), sealer)

    def transfer_source() -> TransferSource:
        from tally.adapters.sqlite.ledger_read import SqliteTransferSource

        return SqliteTransferSource(path)

    def event_log() -> EventLog:
        from tally.adapters.sqlite.events import SqliteEventLog

        return SqliteEventLog(in_place())

    def event_source() -> ClosableSource:
        from tally.adapters.sqlite.events import SqliteEventLog
        from tally.settlement.source import LogSource

        return LogSource(SqliteEventLog(path))

    def input_quarantine() -> InputQuarantine:
        from tally.adapters.sqlite.quarantine import SqliteInputQuarantine

        return SqliteInputQuarantine(in_place())

    def import_progress() -> ImportProgress:
        from tally.adapters.sqlite.quarantine import SqliteImportProgress

        return SqliteImportProgress(in_place())

    def wallet_marks() -> WalletMarks:
        from tally.adapters.sqlite.wallet import SqliteWalletMarks

        return SqliteWalletMarks(path)

    def reconciliation_store() -> ReconciliationStore:
        from tally.adapters.sqlite.reconciliation import SqliteReconciliationStore

        return SqliteReconciliationStore(in_place())

    def payout_store(ledger: LedgerStore) -> PayoutStore:
        from tally.adapters.sqlite.ledger import SqliteLedgerStore
        from tally.adapters.sqlite.payouts import SqlitePayoutStore

        assert isinstance(ledger, SqliteLedgerStore)
        return SqlitePayoutStore(ledger)

    def alert_store() -> AlertStore:
        from tally.adapters.sqlite.risk import SqliteAlertStore

        return SqliteAlertStore(in_place())

    def risk_store() -> RiskStore:
        from tally.adapters.sqlite.risk_watch import SqliteRiskStore

        return SqliteRiskStore(in_place())

    def lifecycle() -> LifecycleParts:
        from tally.adapters.sqlite.lifecycle import SqlitePartitionSource, SqliteRetention

        return LifecycleParts(SqlitePartitionSource(path), path, lambda: SqliteRetention(path))

    return ModeParts(
        ledger_store=ledger_store,
        settlement=settlement,
        backoffice_store=backoffice_store,
        transfer_source=transfer_source,
        event_log=event_log,
        event_source=event_source,
        input_quarantine=input_quarantine,
        import_progress=import_progress,
        wallet_marks=wallet_marks,
        reconciliation_store=reconciliation_store,
        payout_store=payout_store,
        alert_store=alert_store,
        risk_store=risk_store,
        lifecycle=lifecycle,
    )


def _scaled_parts(settings: Settings) -> ModeParts:  # noqa: C901 (one factory per store)
    """PostgreSQL for the ledger, settlement, back office and quarantine; NATS JetStream
    for the event log."""
    dsn = settings.pg_dsn

    def ledger_store() -> LedgerStore:
        from tally.adapters.postgres.ledger import PostgresLedgerStore

        return PostgresLedgerStore(dsn, settings.ledger_limits)

    def settlement(ledger: LedgerStore) -> tuple[ConfigDocuments, SettlementStore]:
        from tally.adapters.postgres.ledger import PostgresLedgerStore
        from tally.adapters.postgres.settlement import (
            PostgresConfigDocuments,
            PostgresSettlementStore,
        )

        assert isinstance(ledger, PostgresLedgerStore)
        return PostgresConfigDocuments(dsn), PostgresSettlementStore(ledger, dsn)

    def backoffice_store(sealer: Sealer) -> BackofficeStore:
        from tally.adapters.postgres.backoffice import PostgresBackofficeStore

        return PostgresBackofficeStore(dsn, sealer)

    def transfer_source() -> TransferSource:
        from tally.adapters.postgres.ledger_read import PostgresTransferSource

        return PostgresTransferSource(dsn)

    def event_log() -> EventLog:
        from tally.adapters.nats.events import JetStreamEventLog

        return JetStreamEventLog(settings.nats_url, _stream_names(settings))

    def event_source() -> ClosableSource:
        from tally.adapters.nats.source import JetStreamSource

        return JetStreamSource(settings.nats_url, _stream_names(settings))

    def input_quarantine() -> InputQuarantine:
        from tally.adapters.postgres.quarantine import PostgresInputQuarantine

        return PostgresInputQuarantine(dsn)

    def import_progress() -> ImportProgress:
        from tally.adapters.postgres.quarantine import PostgresImportProgress

        return PostgresImportProgress(dsn)

    def wallet_marks() -> WalletMarks:
        from tally.adapters.postgres.wallet import PostgresWalletMarks

        return PostgresWalletMarks(dsn)

    def reconciliation_store() -> ReconciliationStore:
        from tally.adapters.postgres.reconciliation import PostgresReconciliationStore

        return PostgresReconciliationStore(dsn)

    def payout_store(ledger: LedgerStore) -> PayoutStore:
        from tally.adapters.postgres.ledger import PostgresLedgerStore
        from tally.adapters.postgres.payouts import PostgresPayoutStore

        assert isinstance(ledger, PostgresLedgerStore)
        return PostgresPayoutStore(ledger, dsn)

    def alert_store() -> AlertStore:
        from tally.adapters.postgres.risk import PostgresAlertStore

        return PostgresAlertStore(dsn)

    def risk_store() -> RiskStore:
        from tally.adapters.postgres.risk_watch import PostgresRiskStore

        return PostgresRiskStore(dsn)

    def lifecycle() -> LifecycleParts:
        from tally.adapters.postgres.lifecycle import (
            PostgresPartitions,
            PostgresPartitionSource,
            PostgresRetention,
        )

        partitions = PostgresPartitions(dsn)
        return LifecycleParts(
            PostgresPartitionSource(dsn),
            None,
            lambda: PostgresRetention(partitions),
            partitions,
        )

    return ModeParts(
        ledger_store=ledger_store,
        settlement=settlement,
        backoffice_store=backoffice_store,
        transfer_source=transfer_source,
        event_log=event_log,
        event_source=event_source,
        input_quarantine=input_quarantine,
        import_progress=import_progress,
        wallet_marks=wallet_marks,
        reconciliation_store=reconciliation_store,
        payout_store=payout_store,
        alert_store=alert_store,
        risk_store=risk_store,
        lifecycle=lifecycle,
    )


def build_reconciliation_store(settings: Settings) -> ReconciliationStore:
    return mode_parts(settings).reconciliation_store()


def build_reconciliation(
    settings: Settings,
    clock: Clock,
    ingest: Ingest,
    *,
    alerts: AlertSink,
    store: ReconciliationStore | None = None,
    ledger: LedgerService | None = None,
) -> ReconciliationService:
    """Reconciliation on the deployment's stores: Tally's side from the event log (ADR
    0019), refused input into the input quarantine, rules from configuration; FX rounding
    adjustments post to ``ledger`` (in the same database as the store) and missing lines
    are re-driven into the event log."""
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
        store or build_reconciliation_store(settings),
        LogTallySide(ingest.log),
        ingest.inputs,
        clock,
        rules,
        alerts=alerts,
        ledger=ledger,
        log=ingest.log,
    )


def build_rails(settings: Settings, clock: Clock) -> dict[str, Rail]:
    """The external rails the settings turn on (``Settings.rails``), keyed by name: the
    bank-file rail (``bank-file``) and the PSP rail (``psp``)."""
    found: dict[str, Rail] = {}
    config = settings.rails
    if config.bank_file_dir is not None:
        from tally.adapters.payouts.bank_file import BankFileRail, Debtor

        debtor = Debtor(config.bank_debtor_name, config.bank_debtor_iban, config.bank_debtor_bic)
        bank = BankFileRail(config.bank_file_dir, debtor, clock, currencies=config.bank_currencies)
        found[bank.name] = bank
    if config.psp_url is not None:
        from tally.adapters.payouts.psp import PspRail

        psp = PspRail(config.psp_url, currencies=config.psp_currencies, api_key=config.psp_api_key)
        found[psp.name] = psp
    return found


def build_payouts(
    app: App,
    auth: AuthService,
    audit: AuditStore,
    *,
    alerts: AlertSink,
    rails: dict[str, Rail] | None = None,
    store: PayoutStore | None = None,
) -> PayoutService:
    """Payouts on the deployment's ledger database: payables from settlement's closed
    periods, the checker's TOTP through auth, the internal rail always, and ``rails``
    (the bank file and PSP rails, keyed by name) beside it; conditions go to ``alerts``
    (the deployment's sink, ``Backoffice.alerts``)."""
    from tally.adapters.payouts.internal import InternalRail
    from tally.app.payouts import SettlementPayables, TotpSecondFactor
    from tally.payouts.service import PayoutService

    internal = InternalRail(app.ledger_store, app.clock)
    every: dict[str, Rail] = {internal.name: internal, **(rails or {})}
    return PayoutService(
        store or mode_parts(app.settings).payout_store(app.ledger_store),
        SettlementPayables(app.settlement_store, app.settlement_config, app.clock),
        every,
        app.clock,
        alerts,
        second_factor=TotpSecondFactor(auth),
        policy=app.settings.payout_policy,
        limits=app.settings.payout_limits,
        system=Auditing(audit, "system:payouts", "worker"),
    )


# -- risk: the alert sink, playbooks and deliveries ----------------------------------------


@dataclass
class Risk:
    """The deployment's alerts (``alerts`` is the AlertSink every context signals
    through), the playbooks that answer them, the switches they set, and the deliverer
    that empties the outbox."""

    store: AlertStore
    alerts: AlertService
    playbooks: Playbooks
    switches: RiskSwitches
    deliverer: Deliverer
    transport: Transport

    def close(self) -> None:
        self.transport.close()
        self.store.close()


ALERT_COALESCE_S = 1.0


def build_alert_store(settings: Settings) -> AlertStore:
    return mode_parts(settings).alert_store()


def build_risk(
    settings: Settings,
    clock: Clock,
    trail: AuditStore,
    *,
    store: AlertStore | None = None,
    transport: Transport | None = None,
) -> Risk:
    """Alerts on the mode's store (in the database of ``trail``, so each change commits
    with its audit record), playbooks firing on actionable alerts, deliveries to the
    sinks of ``settings.alert_sinks_path``."""
    import json

    from tally.risk.alerts import AlertService
    from tally.risk.delivery import Deliverer, Sinks, sinks_from_settings
    from tally.risk.playbooks import Playbooks, RiskSwitches

    raw = []
    if settings.alert_sinks_path is not None:
        raw = json.loads(settings.alert_sinks_path.read_text(encoding="utf-8"))
    sinks = Sinks(sinks_from_settings(raw), generator_url=settings.public_url)
    if transport is None:
        from tally.adapters.webhooks import HttpTransport

        transport = HttpTransport()
    store = store or build_alert_store(settings)
    playbooks = Playbooks(store, trail, clock)
    alerts = AlertService(
        store,
        trail,
        clock,
        sinks=sinks,
        on_actionable=playbooks.fire,
        # A detector's repeats are counted in memory for up to a second (ADR 0025).
        coalesce_s=ALERT_COALESCE_S,
    )
    return Risk(
        store=store,
        alerts=alerts,
        playbooks=playbooks,
        switches=RiskSwitches(store),
        deliverer=Deliverer(store, sinks, transport, clock),
        transport=transport,
    )


# -- the risk watch --------------------------------------------------------------------


def build_risk_store(settings: Settings) -> RiskStore:
    return mode_parts(settings).risk_store()


@dataclass(slots=True)
class RiskParts:
    watch: RiskWatch
    forecasts: Forecasts
    store: RiskStore
    # The alerts (and their audit trail) the watch signals to, when it made them itself.
    alerts: Risk | None = None
    trail: BackofficeStore | None = None

    def close(self) -> None:
        self.watch.log.close()
        self.store.close()
        if self.alerts is not None:
            self.alerts.close()
        if self.trail is not None:
            self.trail.close()


def build_risk_watch(settings: Settings, clock: Clock, sink: AlertSink | None = None) -> RiskParts:
    """The watch over the deployment's event log, its detectors configured from the
    store's certified games and the latest forecasts as the volume corridor. ``sink``:
    where signals go; without one, the deployment's alerts service on the mode's store
    (beside its audit trail, as ``build_backoffice`` makes them)."""
    from tally.risk.forecast import Forecasts
    from tally.risk.watch import RiskWatch, default_detectors

    risk: Risk | None = None
    trail: BackofficeStore | None = None
    if sink is None:
        trail = build_backoffice_store(settings, Sealer(load_keys(settings).audit))
        risk = build_risk(settings, clock, trail)
        sink = risk.alerts
    store = build_risk_store(settings)
    forecasts = Forecasts(store, store, clock)
    watch = RiskWatch(
        build_event_log(settings),
        store,
        sink,
        default_detectors(store.all(), forecasts),
        clock,
    )
    return RiskParts(watch, forecasts, store, risk, trail)


# -- the data lifecycle (ADR 0023) ------------------------------------------------------------


@dataclass
class Lifecycle:
    """Seals, archives and backups, with the export signing key."""

    settings: Settings
    archives: ArchiveService
    public_pem: bytes
    clock: Clock
    alerts: AlertSink

    def _parts(self) -> LifecycleParts:
        return mode_parts(self.settings).lifecycle()

    def partition_source(self) -> PartitionSource:
        """The live store's partitions."""
        source = self._parts().source
        assert source is not None
        return source

    def _sqlite_file(self, what: str) -> Path:
        path = self._parts().sqlite_file
        if path is None:
            raise ValueError(f"{what} works on the embedded store's SQLite file")
        return path

    def retention(self, archives_root: Path) -> RetentionService:
        from tally.adapters.archive_dir import ArchiveDirShelf

        parts = self._parts()
        return RetentionService(
            self.archives,
            self.partition_source(),
            parts.retention(),
            ArchiveDirShelf(archives_root),
            self.alerts,
            self.clock,
        )

    def maintenance(
        self, regions: Sequence[str], *, grain: str = "month", ahead: int = 2, install: bool
    ) -> MaintenanceService:
        """The partitions-ahead job (PostgreSQL); ``install`` first partitions the tables."""
        from tally.adapters.postgres.lifecycle import PARTITIONED, PostgresPartitions

        maintainer = self._parts().maintainer
        if not isinstance(maintainer, PostgresPartitions):
            raise ValueError("tally maintain makes PostgreSQL partitions (scaled mode)")
        if install:
            maintainer.install()
        return MaintenanceService(
            maintainer,
            self.alerts,
            self.clock,
            tables=list(PARTITIONED),
            regions=regions,
            grain=grain,
            ahead=ahead,
        )

    def backups(self, method: str = "api") -> BackupService:
        from tally.adapters.sqlite.lifecycle import SqliteEmbeddedFile

        if method not in ("api", "vacuum"):
            raise ValueError(f"a backup method is 'api' or 'vacuum', not {method!r}")
        store = SqliteEmbeddedFile(
            self._sqlite_file("tally backup"), "vacuum" if method == "vacuum" else "api"
        )
        return BackupService(self.archives, store, self.clock)


class AlertsOnDemand:
    """The deployment's alerts service, opened for each signal: the sink of commands that
    signal rarely and run without a back office (retention, partition maintenance)."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock

    @contextmanager
    def _alerts(self) -> Iterator[AlertSink]:
        trail = build_backoffice_store(self.settings, Sealer(load_keys(self.settings).audit))
        risk = build_risk(self.settings, self.clock, trail)
        try:
            yield risk.alerts
        finally:
            risk.close()
            trail.close()

    def signal(self, alert: AlertSignal) -> None:
        with self._alerts() as alerts:
            alerts.signal(alert)

    def clear(self, kind: str, key: str, at: datetime) -> None:
        with self._alerts() as alerts:
            alerts.clear(kind, key, at)


def build_lifecycle(
    settings: Settings,
    *,
    keys: Keys | None = None,
    clock: Clock | None = None,
    alerts: AlertSink | None = None,
) -> Lifecycle:
    keys = keys or load_keys(settings)
    signer = Signer(keys.signing_pem)
    clock = clock or SystemClock()
    return Lifecycle(
        settings,
        ArchiveService(signer.sign, signer.public_pem(), clock),
        signer.public_pem(),
        clock,
        alerts or AlertsOnDemand(settings, clock),
    )

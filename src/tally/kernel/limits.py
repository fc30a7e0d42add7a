"""Named limits. Every queue, batch, retry and window has one, and it lives here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LedgerLimits:
    # Group commit: a batch closes at this many transfers or after this wait.
    batch_max_transfers: int = 16_384
    batch_max_wait_s: float = 0.002
    # Submissions waiting for the writer; a full queue pushes back on callers.
    queue_max_submissions: int = 4_096
    submit_timeout_s: float = 5.0
    # Transfers one submission may carry (a linked chain lives in one submission).
    submission_max_transfers: int = 8_192
    # How often an idle writer wakes up to expire timed-out pending transfers.
    expiry_tick_s: float = 0.5
    # Attempts of a batch that failed with a retryable store error.
    retry_attempts: int = 3
    retry_backoff_s: float = 0.05
    # Identifiers and free text.
    id_max_length: int = 128
    code_max_length: int = 64
    metadata_max_entries: int = 32
    metadata_max_value_length: int = 512
    # Longest timeout a pending transfer may ask for (30 days).
    pending_timeout_max_s: int = 30 * 86_400
    # Pagination.
    page_max_size: int = 1_000
    # Embedded store: transfers written before an account's history index takes them in,
    # in one sorted bulk insert (ADR 0009); a history read scans at most this many.
    history_index_lag: int = 32_768
    # Embedded store: the indexer takes a tail in this many transactions, each over a
    # range of the index's key (account, seq) holding about as many entries, so each
    # holds the file's write lock a fraction as long.
    history_index_pieces: int = 1
    # Embedded store: copy the WAL into the database file on the indexer's thread at most
    # this often, so that commits seldom do it themselves (0: only SQLite's own, which a
    # commit runs once the WAL holds 64 MiB).
    checkpoint_behind_s: float = 0.0
    # Accounts a writer keeps in memory between batches (definitions; on the embedded
    # store their balances too). A batch naming more is still served, from the table.
    account_cache_max: int = 200_000


@dataclass(frozen=True, slots=True)
class AuthLimits:
    # Login throttling (tally.auth.throttle; the policy is in the back-office API guide).
    # Attempts counted on a username from one address, on one address whatever the
    # username, and on a username from anywhere, before a wait begins; each attempt
    # after that doubles the wait, up to its cap. Nothing locks an account.
    login_attempts_per_user_source: int = 5
    login_attempts_per_source: int = 50
    login_attempts_per_user: int = 20
    login_first_wait_s: int = 30
    login_max_wait_s: int = 15 * 60
    # A username's wait counted from every address stays short: someone guessing from
    # many addresses must not be able to keep the real user out for long.
    login_user_first_wait_s: int = 5
    login_user_max_wait_s: int = 60
    # A count starts again after this long without an attempt.
    login_forget_after_s: int = 3_600
    # A staff session lasts this long from login; an MFA-enrolment session much less.
    session_ttl_s: int = 8 * 3_600
    enrolment_session_ttl_s: int = 10 * 60
    # Longest life an API key may be given (a year); keys may also never expire.
    api_key_max_ttl_s: int = 366 * 86_400
    username_max_length: int = 64
    name_max_length: int = 128
    # Pagination of users, keys and audit records.
    page_max_size: int = 500


@dataclass(frozen=True, slots=True)
class ApiLimits:
    # Bytes one request body may carry, by route. Checked at the edge before the body is
    # read: a declared Content-Length over it is refused unread, and a body sent without
    # one (chunked) is counted as it arrives and refused once it passes the limit.
    body_max_bytes: int = 1024 * 1024  # the JSON bodies of the back-office routes
    # Settlement configuration documents and FX rate imports (up to 10,000 rates).
    config_body_max_bytes: int = 4 * 1024 * 1024
    # One partner feed push (tally.ingest.feeds.FEED_MAX_BYTES reads it from here).
    feed_body_max_bytes: int = 4 * 1024 * 1024
    # One uploaded batch report.
    import_body_max_bytes: int = 64 * 1024 * 1024
    # One provider report uploaded for reconciliation (a larger one is run from the
    # command line, up to ReconciliationLimits.report_max_bytes).
    reconciliation_body_max_bytes: int = 64 * 1024 * 1024


# How deep a JSON document from outside may nest. Events and protocol bodies are flat
# objects; the json module recurses once a level, and whether it gives up depends on the
# interpreter's recursion limit at that moment (which test tools and libraries raise), so
# the depth is checked before parsing, by a rule that does not depend on it.
JSON_MAX_DEPTH = 64


def json_too_deep(text: str, limit: int = JSON_MAX_DEPTH) -> bool:
    """Whether ``text`` opens more than ``limit`` JSON arrays/objects inside each other.

    Cheap for ordinary documents: with no more than ``limit`` brackets in all, no nesting
    can pass it; only then are the levels followed, outside strings.
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


@dataclass(frozen=True, slots=True)
class ReconciliationLimits:
    # One provider report file (checked before it is read whole).
    report_max_bytes: int = 256 * 1024 * 1024
    # Lines stored per insert while a report is read.
    batch_lines: int = 10_000
    # A line this close to the end of its day (provider's zone) that is still unmatched
    # waits for the next day's lines before it is called missing: a round played across
    # midnight is a timing break, not two missing lines.
    cutoff_carry_s: int = 3_600
    # A report in day order is matched as it is read, not stored and sorted first; a line
    # may come this long after lines of the next day (a round's win after the next day's
    # first bet). A line later still sends the run the sorted way (through the store).
    day_order_slack_s: int = 3_600
    # An unresolved break older than this is signalled as an alert (cleared when the
    # break is resolved or written off).
    break_alert_age_s: int = 3 * 86_400
    # Breaks a page of `breaks` lists at most.
    page_max_size: int = 1_000
    # Free text on a break (owner, note).
    text_max_length: int = 2_000


@dataclass(frozen=True, slots=True)
class RailLimits:
    """The payout rails' limits (ADR 0022): the bank file and the payment provider."""

    # Payments one pain.001 file carries (one file per run; a bigger run is refused, not
    # split, so that one run stays one file the bank acknowledges as a whole).
    bank_file_max_payments: int = 100_000
    # One pain.002 status report, checked before it is read whole.
    status_report_max_bytes: int = 64 * 1024 * 1024
    # One PSP webhook body, checked before it is read whole; a payout event is a small
    # flat object, so anything near this is not one.
    webhook_body_max_bytes: int = 64 * 1024
    # A webhook's signed timestamp may be this far from our clock, either way; older is
    # refused as stale (a replay), newer as forged.
    webhook_tolerance_s: int = 300
    # The PSP client: connecting, and waiting for one answer. A request that outlives
    # the read timeout may still have taken effect: its answer is UNKNOWN, never REJECTED.
    psp_connect_timeout_s: float = 2.0
    psp_read_timeout_s: float = 5.0
    # Requests the PSP client has in flight at once during one submit, and payouts it puts
    # in one batch request (the fake PSP takes up to 1,000).
    psp_concurrency: int = 4
    psp_batch_max: int = 500
    # Idempotency keys and references the PSP is sent (longer is refused before sending).
    psp_key_max_length: int = 255


@dataclass(frozen=True, slots=True)
class PayoutLimits:
    # Payouts one worker step moves (reserves, submits, asks about) in one transaction
    # each way; a rail's submit gets at most this many instructions at once.
    step_max_payouts: int = 5_000
    # Rail answers one absorb call takes (a webhook batch, one pain.002's lines).
    absorb_max_answers: int = 10_000
    # Payables one run may net (a run over it is refused: narrow its scope).
    run_max_payables: int = 1_000_000
    # Runs a listing returns at most.
    page_max_runs: int = 1_000
    # Free text: counterparty names, accounts, references, TOTP codes.
    text_max_length: int = 200
    # How long an idle worker sleeps before looking again.
    idle_wait_s: float = 0.05

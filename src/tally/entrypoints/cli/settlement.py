"""``tally contracts|fx|partners|settlement ...``: settlement terms, rates and figures."""

from __future__ import annotations

import json
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer

from tally.app.runtime import settle_heap
from tally.entrypoints.cli.common import (
    cli_auditing,
    console,
    err_console,
    open_app,
)
from tally.entrypoints.cli.tables import Table
from tally.kernel.money import format_amount
from tally.settlement import codec
from tally.settlement.config import ConfigConflict
from tally.settlement.contracts import ContractError
from tally.settlement.figures import (
    Dimension,
    commissions_accrued,
    fees_accrued,
    live_totals,
)
from tally.settlement.fx import FxError, parse_rates_csv
from tally.settlement.partners import Agent, Placement, TreeError
from tally.settlement.service import NoEvents, SettlementLimits, SettlementWorker

contracts_app = typer.Typer(help="Versioned settlement contracts.", no_args_is_help=True)
fx_app = typer.Typer(help="FX rates: import and look up.", no_args_is_help=True)
partners_app = typer.Typer(
    help="Partner trees: agents, their rates and places.", no_args_is_help=True
)
settlement_app = typer.Typer(help="Live figures and statements.", no_args_is_help=True)


def _instant(text: str | None) -> datetime | None:
    if text is None:
        return None
    when = datetime.fromisoformat(text)
    if when.tzinfo is None:
        raise typer.BadParameter("give a time zone, e.g. 2026-03-01T00:00:00+00:00")
    return when


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[red]{message}[/red]")
    return typer.Exit(1)


# -- contracts ------------------------------------------------------------------------------
@contracts_app.command("add")
def contracts_add(
    file: Annotated[Path, typer.Argument(help="JSON: one contract version or a list of them")],
) -> None:
    """Add contract versions; the same version again is a no-op, changed content a conflict."""
    data = json.loads(file.read_text())
    documents = data if isinstance(data, list) else [data]
    with open_app() as tally, cli_auditing(tally) as by:
        for document in documents:
            try:
                terms = codec.terms_from_dict(document)
                outcome = tally.settlement_config.put_contract(terms, tally.clock.now(), by=by)
            except (ContractError, ConfigConflict) as exc:
                raise _fail(f"refused: {exc}") from None
            console.print(f"{terms.contract_id} v{terms.version}: {outcome.value}")


@contracts_app.command("list")
def contracts_list(provider: Annotated[str | None, typer.Option()] = None) -> None:
    """Every contract version, oldest first."""
    with open_app() as tally:
        table = Table(
            "contract",
            "version",
            "provider",
            "operator",
            "from",
            "basis",
            "currency",
            "period",
            "time zone",
            "minimum fee",
        )
        for t in tally.settlement_config.contracts(provider):
            table.add_row(
                t.contract_id,
                str(t.version),
                t.provider,
                t.operator or "(all)",
                t.effective_from.isoformat(),
                t.basis.value,
                t.settlement_currency,
                t.period.value,
                t.timezone,
                format_amount(t.minimum_fee, t.settlement_currency),
            )
        console.print(table)


# -- FX -------------------------------------------------------------------------------------
@fx_app.command("import")
def fx_import(
    file: Annotated[Path, typer.Argument(help="CSV: base,quote,effective_at,rate")],
    source: Annotated[str, typer.Option(help="where the rates come from")] = "csv",
) -> None:
    """Import rates; bad lines are listed with their reason and nothing of them is kept."""
    rates, problems = parse_rates_csv(file.read_text(), source=source)
    for problem in problems:
        err_console.print(f"line {problem.line}: {problem.reason}: {problem.text}")
    with open_app() as tally, cli_auditing(tally) as by:
        result = tally.settlement_config.put_fx_rates(
            rates, tally.clock.now(), by=by, origin=f"{file.name} ({source})"
        )
    console.print(
        f"{result.created} new, {result.existing} already known, "
        f"{len(result.conflicts)} conflicting, {len(problems)} refused lines"
    )
    for rate in result.conflicts:
        err_console.print(f"conflict: {rate.base}/{rate.quote} at {rate.effective_at} differs")
    if problems or result.conflicts:
        raise typer.Exit(1)


@fx_app.command("rate")
def fx_rate(base: str, quote: str, at: Annotated[str | None, typer.Option()] = None) -> None:
    """The rate in force at an instant (now by default)."""
    with open_app() as tally:
        when = _instant(at) or tally.clock.now()
        try:
            console.print(str(tally.settlement_config.fx().rate(base, quote, when)))
        except FxError as exc:
            raise _fail(str(exc)) from None


# -- partners ---------------------------------------------------------------------------------
@partners_app.command("add-agent")
def partners_add_agent(
    agent_id: str,
    operator: Annotated[str, typer.Option()],
    rolling: Annotated[str, typer.Option(help="rolling rate on turnover, e.g. 0.015")],
    losing: Annotated[str, typer.Option(help="losing rate on net loss, e.g. 0.25")],
    effective_from: Annotated[str, typer.Option("--from", help="ISO instant with zone")],
) -> None:
    """Add an agent, or a new version of its rates from an instant on."""
    when = _instant(effective_from)
    assert when is not None
    agent = Agent(agent_id, operator, Decimal(rolling), Decimal(losing), when)
    with open_app() as tally, cli_auditing(tally) as by:
        try:
            outcome = tally.settlement_config.put_agent(agent, tally.clock.now(), by=by)
        except ConfigConflict as exc:
            raise _fail(str(exc)) from None
    console.print(f"{agent_id} from {when.isoformat()}: {outcome.value}")


@partners_app.command("place")
def partners_place(
    agent_id: str,
    effective_from: Annotated[str, typer.Option("--from", help="ISO instant with zone")],
    parent: Annotated[str | None, typer.Option(help="the parent agent; none for the top")] = None,
) -> None:
    """Place an agent under a parent from an instant on (moving a store is a new place)."""
    when = _instant(effective_from)
    assert when is not None
    with open_app() as tally, cli_auditing(tally) as by:
        placement = Placement(agent_id, parent, when)
        try:
            outcome = tally.settlement_config.put_placement(placement, tally.clock.now(), by=by)
        except (ContractError, ConfigConflict) as exc:
            raise _fail(str(exc)) from None
    console.print(f"{agent_id} under {parent or '(top)'} from {when.isoformat()}: {outcome.value}")


@partners_app.command("tree")
def partners_tree(operator: str, at: Annotated[str | None, typer.Option()] = None) -> None:
    """Each agent's path to the top, with the rates in force."""
    with open_app() as tally:
        when = _instant(at) or tally.clock.now()
        tree = tally.settlement_config.partner_tree(operator)
        table = Table("agent", "path to the top", "rolling", "losing")
        for agent_id in sorted(tree.agent_ids()):
            try:
                path = tree.path(agent_id, when)
            except TreeError as exc:
                table.add_row(agent_id, f"[red]{exc}[/red]", "", "")
                continue
            table.add_row(
                agent_id,
                " > ".join(a.id for a in path),
                str(path[0].rolling_rate),
                str(path[0].losing_rate),
            )
        console.print(table)


# -- figures and statements --------------------------------------------------------------------
@settlement_app.command("figures")
def settlement_figures(
    by: Annotated[
        str,
        typer.Option(
            help="comma-separated: provider, operator, region, game_type, period, contract"
        ),
    ] = "provider,operator",
    provider: Annotated[str | None, typer.Option()] = None,
    operator: Annotated[str | None, typer.Option()] = None,
    period: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Live turnover, GGR, NGR, fees and commissions accrued, as committed."""
    try:
        dims = [Dimension(d.strip()) for d in by.split(",") if d.strip()]
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    where = {
        d: v
        for d, v in (
            (Dimension.PROVIDER, provider),
            (Dimension.OPERATOR, operator),
            (Dimension.PERIOD, period),
        )
        if v is not None
    }
    with open_app() as tally:
        figures = tally.settlement_store.load_figures()
        contracts = tally.settlement_config.contracts()
        statements = tally.settlement_store.statements()
    table = Table(
        *[d.value for d in dims],
        "currency",
        "turnover",
        "wins",
        "GGR",
        "bonuses",
        "NGR",
        title="Totals",
    )
    for row in live_totals(figures, dims, where):
        key = dict(row.key)
        cur = key["currency"]
        t = row.totals
        table.add_row(
            *[key[d.value] for d in dims],
            cur,
            *(format_amount(v, cur) for v in (t.turnover, t.wins, t.ggr, t.bonuses, row.ngr)),
        )
    console.print(table)
    fees = Table(
        "contract",
        "version",
        "provider",
        "operator",
        "period",
        "status",
        "currency",
        "fee",
        title="Provider fees (open: accrued per version; closed: the statement's fee)",
    )
    for fee in fees_accrued(figures, contracts, where, statements=statements):
        key = dict(fee.key)
        fees.add_row(
            key["contract"],
            key["version"],
            key["provider"],
            key["operator"],
            key["period"],
            key["status"],
            key["currency"],
            format_amount(fee.accrued, key["currency"]),
        )
    console.print(fees)
    commissions = Table(
        "agent",
        "operator",
        "period",
        "currency",
        "commission accrued",
        title="Partner commissions accrued",
    )
    for c in commissions_accrued(figures, operator=operator):
        key = dict(c.key)
        commissions.add_row(
            key["agent"],
            key["operator"],
            key["period"],
            key["currency"],
            format_amount(c.accrued, key["currency"]),
        )
    console.print(commissions)


@settlement_app.command("orphans")
def settlement_orphans(
    past_close: Annotated[
        bool, typer.Option("--past-close", help="Only those whose period already closed.")
    ] = False,
) -> None:
    """Rollbacks still waiting for their original, with the period each falls in (one
    still here after its period closed voided nothing in it: its original never came, or
    came under another key)."""
    with open_app() as tally:
        found = tally.settlement_store.orphans()
    outlived = sum(1 for o in found if o.outlived_close)
    table = Table(
        "ref (original named)",
        "rollback",
        "occurred at",
        "operator",
        "currency",
        "contract",
        "period",
        "outlived close",
        title="Rollbacks waiting for their original",
    )
    for o in found:
        if past_close and not o.outlived_close:
            continue
        w = o.waiting
        table.add_row(
            w.ref,
            w.key,
            _or_unknown(w.occurred_at.isoformat() if w.occurred_at else None),
            _or_unknown(w.operator),
            _or_unknown(w.currency),
            _or_unknown(w.contract_id),
            _or_unknown(w.period),
            _or_unknown(None if o.outlived_close is None else "yes" if o.outlived_close else "no"),
        )
    console.print(table)
    console.print(f"{len(found)} waiting, {outlived} outlived its period's close")


def _or_unknown(value: str | None) -> str:
    # Rollbacks stored before their instant and period were kept, or with no contract
    # in force at their instant.
    return "unknown" if value is None else value


@settlement_app.command("statements")
def settlement_statements() -> None:
    """Closed periods and the SHA-256 of their statements."""
    with open_app() as tally:
        table = Table("contract", "operator", "period", "closed at", "sha256")
        for s in tally.settlement_store.statements():
            table.add_row(s.contract_id, s.operator, s.period, s.closed_at.isoformat(), s.sha256)
        console.print(table)


@settlement_app.command("statement")
def settlement_statement(
    contract_id: str,
    operator: str,
    period: str,
    csv: Annotated[bool, typer.Option("--csv", help="CSV instead of JSON")] = False,
    out: Annotated[Path | None, typer.Option(help="write to this file")] = None,
) -> None:
    """One statement, as JSON (default) or CSV."""
    with open_app() as tally:
        found = [
            s
            for s in tally.settlement_store.statements()
            if (s.contract_id, s.operator, s.period) == (contract_id, operator, period)
        ]
    if not found:
        raise _fail(f"no statement for {contract_id}/{operator}/{period}")
    body = found[0].csv if csv else found[0].document
    if out is None:
        console.print(body.decode(), markup=False, highlight=False)
    else:
        out.write_bytes(body)
        console.print(f"written to {out} (sha256 of the JSON: {found[0].sha256})")


@settlement_app.command("close")
def settlement_close(
    contract_id: str,
    operator: str,
    period: Annotated[str, typer.Argument(help="the period's label, e.g. 2026-03")],
    override_breaks: Annotated[
        bool,
        typer.Option(help="close although reconciliation breaks over the limit are unresolved"),
    ] = False,
    note: Annotated[str, typer.Option(help="why the breaks are overridden (required)")] = "",
) -> None:
    """Close a period that has ended: freeze it, post the close adjustment, write the statement.

    Unresolved reconciliation breaks of the contract's provider with the operator, over
    the limit, hold the close unless overridden (--override-breaks --note, audited).
    Run it where no settlement worker is running on the same database (the worker closes
    periods itself when it runs in the same process).
    """
    from tally.app.bootstrap import build_backoffice
    from tally.settlement.engine import PeriodCloseError

    if override_breaks and not note.strip():
        raise typer.BadParameter("--override-breaks says why: --note")
    with open_app() as tally, cli_auditing(tally) as by:
        backoffice = build_backoffice(tally)
        try:
            worker = SettlementWorker(
                NoEvents(), tally.settlement_store, tally.settlement_config, tally.clock, by=by,
                breaks=backoffice.reconciliation, holds=backoffice.risk.switches,
            )  # fmt: skip
            statement = worker.close_period(
                contract_id, operator, period, override_breaks=note if override_breaks else ""
            )
        except PeriodCloseError as exc:
            raise _fail(f"not closed: {exc}") from None
        finally:
            backoffice.close()
    cur = statement.terms.settlement_currency
    console.print(
        f"closed {contract_id}/{operator}/{period}: fee "
        f"{format_amount(statement.fee.fee, cur)} {cur}, sha256 {statement.sha256}"
    )


@settlement_app.command("run")
def settlement_run(
    until_drained: Annotated[
        bool, typer.Option(help="stop when the event log has nothing more to settle")
    ] = False,
    batch_max_events: Annotated[
        int,
        typer.Option(min=1, help="the most events settled in one transaction"),
    ] = SettlementLimits().batch_max_events,
) -> None:
    """Settle the event log (embedded table, or JetStream in scaled mode), batch by batch,
    exactly once (Ctrl-C stops)."""
    from tally.app.bootstrap import build_event_source

    with (
        open_app() as tally,
        cli_auditing(tally, actor="system:settlement", source="worker") as by,
    ):
        source = build_event_source(tally.settings)
        worker = SettlementWorker(
            source,
            tally.settlement_store,
            tally.settlement_config,
            tally.clock,
            SettlementLimits(batch_max_events=batch_max_events),
            by=by,
        )
        started = worker.position
        # What was built to start lives as long as the process: keep the collector from
        # walking it again on every full collection (each paused settlement for 20-50 ms,
        # which is what a p99 latency sees).
        settle_heap()
        try:
            while True:
                if worker.step() == 0:
                    if until_drained:
                        break
                    time.sleep(worker.limits.idle_wait_s)
        except KeyboardInterrupt:
            pass
        finally:
            source.close()
    console.print(f"settled up to position {worker.position} (from {started})")

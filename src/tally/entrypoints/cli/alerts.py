"""``tally alerts``: alerts, silences, alert rules, playbook actions and deliveries."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from tally.app.bootstrap import Backoffice, build_backoffice
from tally.audit.service import Auditing
from tally.entrypoints.cli.common import CLI_ACTOR, console, err_console, open_app
from tally.entrypoints.cli.tables import Table
from tally.risk.alerts import AlertRefused, silence_to_dict
from tally.risk.alerts_model import Matcher, RulesRefused, alert_to_dict
from tally.risk.playbooks import PlaybookRefused, action_to_dict
from tally.risk.ports import AlertFilter

alerts_app = typer.Typer(
    no_args_is_help=True,
    help="Alerts: list, acknowledge, silence; alert rules; playbook actions; deliveries.",
)


@contextmanager
def _backoffice() -> Iterator[tuple[Backoffice, Auditing]]:
    with open_app() as tally:
        backoffice = build_backoffice(tally)
        try:
            yield backoffice, Auditing(backoffice.store, CLI_ACTOR, "cli")
        finally:
            backoffice.close()


def _fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[red]{message}[/red]")
    return typer.Exit(code)


@alerts_app.command("list")
def list_alerts(
    active: Annotated[bool, typer.Option(help="only open or acknowledged")] = True,
    provider: Annotated[str, typer.Option()] = "",
    kind: Annotated[str, typer.Option()] = "",
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100,
) -> None:
    """Alerts, oldest first, with their priority and why any is muted."""
    with _backoffice() as (bo, _):
        service = bo.risk.alerts
        found = service.list(AlertFilter(active=active, provider=provider, kind=kind), limit=limit)
        now = service.clock.now()
        table = Table("id", "status", "severity", "kind", "key", "priority", "cause", "muted")
        for a, muted in zip(found, service.muted_many(found, now), strict=True):
            table.add_row(
                str(a.id), a.status.value, a.severity.value, a.kind, a.key, str(a.priority),
                a.cause, muted,
            )  # fmt: skip
    console.print(table)


@alerts_app.command("show")
def show(alert_id: int) -> None:
    """One alert as JSON: its evidence, refs, and the playbook actions it caused."""
    with _backoffice() as (bo, _):
        a = bo.risk.alerts.get(alert_id)
        if a is None:
            raise _fail(f"no alert {alert_id}")
        actions = [action_to_dict(x) for x in bo.risk.store.actions(alert_id=alert_id)]
    console.print_json(json.dumps({"alert": alert_to_dict(a), "actions": actions}))


@alerts_app.command("ack")
def acknowledge(alert_id: int) -> None:
    """Acknowledge an open alert (audited)."""
    with _backoffice() as (bo, by):
        try:
            a = bo.risk.alerts.acknowledge(alert_id, by)
        except AlertRefused as exc:
            raise _fail(exc.message) from None
    console.print(f"alert {a.id} {a.status.value}")


@alerts_app.command("silence")
def silence(
    matcher: Annotated[list[str], typer.Argument(help="DIMENSION=VALUE (VALUE* a prefix)")],
    reason: Annotated[str, typer.Option(help="why it is safe to mute these alerts")],
    hours: Annotated[float, typer.Option(min=0.01, max=720.0)] = 2.0,
    author: Annotated[str, typer.Option(help="who silences (else system:cli)")] = "",
) -> None:
    """Mute the alerts the matchers select for ``--hours``; one matching everything is
    refused."""
    with _backoffice() as (bo, by):
        if author:
            by = Auditing(by.trail, author, "cli")
        try:
            matchers = [Matcher.parse(m) for m in matcher]
            ends = bo.risk.alerts.clock.now() + timedelta(hours=hours)
            s = bo.risk.alerts.silence(matchers, reason, ends, by)
        except (AlertRefused, RulesRefused) as exc:
            raise _fail(f"refused: {exc}", 2) from None
    console.print(f"silence {s.id} until {s.ends_at.isoformat()}")


@alerts_app.command("unsilence")
def unsilence(silence_id: int) -> None:
    """End a silence now."""
    with _backoffice() as (bo, by):
        try:
            s = bo.risk.alerts.expire_silence(silence_id, by)
        except AlertRefused as exc:
            raise _fail(exc.message) from None
    console.print(f"silence {s.id} ended")


@alerts_app.command("silences")
def silences(all_: Annotated[bool, typer.Option("--all", help="ended ones too")] = False) -> None:
    with _backoffice() as (bo, _):
        at = None if all_ else bo.risk.alerts.clock.now()
        found = [silence_to_dict(s) for s in bo.risk.store.silences(active_at=at)]
    console.print_json(json.dumps(found))


@alerts_app.command("rules")
def rules(
    path: Annotated[
        Path | None, typer.Argument(exists=True, dir_okay=False, help="save this as a new version")
    ] = None,
    version: Annotated[int | None, typer.Option(help="show this version")] = None,
) -> None:
    """Show the alert rules (the latest version, or --version), or save a new version
    from a JSON file (refused with the reason if anything in it is wrong)."""
    with _backoffice() as (bo, by):
        if path is not None:
            try:
                saved = bo.risk.alerts.save_rules(json.loads(path.read_text("utf-8")), by)
            except (RulesRefused, json.JSONDecodeError) as exc:
                raise _fail(f"refused, nothing saved: {exc}", 2) from None
            console.print(f"alert rules version {saved.version} saved")
            return
        found = bo.risk.alerts.rules_version(version)
    if found is None:
        console.print("no alert rules saved: the built-in defaults apply")
        return
    console.print_json(json.dumps({"version": found.version, "document": found.document}))


@alerts_app.command("actions")
def actions(playbook: Annotated[str | None, typer.Option()] = None) -> None:
    """The playbooks' actions, oldest first."""
    with _backoffice() as (bo, _):
        found = bo.risk.store.actions(playbook=playbook)
        table = Table("id", "playbook", "status", "action", "target", "alert", "detail")
        for a in found:
            table.add_row(
                str(a.id), a.playbook, a.status.value, a.action, a.target, str(a.alert_id), a.detail
            )
    console.print(table)


def _settle(action_id: int, what: str) -> None:
    with _backoffice() as (bo, by):
        p = bo.risk.playbooks
        step = {"approve": p.approve, "reject": p.reject, "undo": p.undo}[what]
        try:
            done = step(action_id, by)
        except PlaybookRefused as exc:
            raise _fail(exc.message) from None
    console.print(f"action {done.id} {done.status.value}: {done.action} {done.target}")


@alerts_app.command("approve")
def approve(action_id: int) -> None:
    """Approve a playbook action awaiting approval: it acts now."""
    _settle(action_id, "approve")


@alerts_app.command("reject")
def reject(action_id: int) -> None:
    _settle(action_id, "reject")


@alerts_app.command("undo")
def undo(action_id: int) -> None:
    """Undo a playbook action: its switch goes back exactly as it was."""
    _settle(action_id, "undo")


@alerts_app.command("watch")
def watch(
    every: Annotated[float, typer.Option(min=0.1, help="seconds between rounds")] = 5.0,
    once: Annotated[bool, typer.Option(help="one round, then exit")] = False,
) -> None:
    """The alerts worker: resolve what has cleared long enough, refresh Alertmanager, and
    deliver the outbox (retries with backoff). Ctrl-C stops."""
    with _backoffice() as (bo, _):
        risk = bo.risk
        refresh_s = risk.deliverer.sinks.limits.refresh_s
        last_push = 0.0
        try:
            while True:
                risk.alerts.flush()
                resolved = risk.alerts.sweep()
                now = time.monotonic()
                if now - last_push >= refresh_s:
                    risk.alerts.repush()
                    last_push = now
                sent, failed = risk.deliverer.run_once()
                if resolved or sent or failed:
                    console.print(f"resolved {resolved}, delivered {sent}, failed {failed}")
                if once:
                    return
                time.sleep(every)
        except KeyboardInterrupt:
            return


@alerts_app.command("deliveries")
def deliveries(alert: Annotated[int | None, typer.Option()] = None) -> None:
    """The outbox: what was sent where, and what is waiting or dead."""
    with _backoffice() as (bo, _):
        found = bo.risk.store.deliveries(alert_id=alert, limit=1000)
        table = Table("id", "sink", "alert", "status", "attempts", "next", "error")
        for d in found:
            table.add_row(
                str(d.id), d.sink, str(d.alert_id), d.status.value, str(d.attempts),
                d.next_at.isoformat(), d.last_error,
            )  # fmt: skip
    console.print(table)

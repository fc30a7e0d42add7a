"""``tally serve``: the back-office HTTP API (optionally over TLS)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tally.app.bootstrap import build_app, build_backoffice
from tally.app.logging import configure_logging
from tally.app.metrics import Metrics
from tally.app.runtime import settle_heap
from tally.app.settings import Settings


def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    tls_cert: Annotated[Path | None, typer.Option(help="PEM certificate chain")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key")] = None,
) -> None:
    """Run the API. Give --tls-cert and --tls-key to serve HTTPS."""
    import uvicorn

    from tally.entrypoints.api.app import create_api
    from tally.entrypoints.serving import uvicorn_config

    if (tls_cert is None) != (tls_key is None):
        raise typer.BadParameter("give both --tls-cert and --tls-key, or neither")
    settings = Settings.from_env()
    configure_logging(settings.log_level, json=settings.log_json)
    metrics = Metrics()
    tally = build_app(settings, on_commit=metrics.observe_commit)
    bo = build_backoffice(tally, metrics=metrics)
    with tally:
        api = create_api(tally, bo)
        settle_heap()
        try:
            config = uvicorn_config(
                api,
                settings.trusted_proxies,
                host=host,
                port=port,
                ssl_certfile=str(tls_cert) if tls_cert else None,
                ssl_keyfile=str(tls_key) if tls_key else None,
                log_level=settings.log_level.lower(),
            )
            uvicorn.Server(config).run()
        finally:
            bo.close()

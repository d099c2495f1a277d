"""Run one shadowlab process: the application plus the HTTP server on one port."""

from __future__ import annotations

import logging

import uvicorn

from shadowlab.app import Application
from shadowlab.settings import Settings

log = logging.getLogger(__name__)


def serve(settings: Settings) -> int:
    app = Application(settings)
    app.start()
    log.info(
        "shadowlab listening on http://%s:%d (data dir %s)",
        settings.host,
        settings.port,
        settings.data_dir,
    )
    try:
        # uvicorn handles SIGINT/SIGTERM: it stops accepting, finishes requests, then returns.
        uvicorn.run(
            app.asgi_app,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            lifespan="off",
            access_log=False,
        )
    finally:
        app.stop()
    return 0

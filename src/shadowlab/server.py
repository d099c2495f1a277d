"""Run one shadowlab process: the application and the HTTP server on one port.

The port belongs to the data plane's `asyncio.Protocol` server on uvloop (the only stack that
matched nginx here, see ARCHITECTURE "Measured facts"); it answers invocations itself and hands
every other request to the control plane's ASGI app in-process.

`run` reads as the process's life: build every part (`composition.build_application`), start
them in order, wait for the signal, stop them in reverse order (`runtime.Runtime`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal

import uvloop

from shadowlab.auth import SigV4Verifier
from shadowlab.auth.policy import verifier_for
from shadowlab.composition import build_application
from shadowlab.settings import Settings

log = logging.getLogger(__name__)


async def run(settings: Settings, stop: asyncio.Event, verifier: SigV4Verifier | None) -> None:
    loop = asyncio.get_running_loop()
    runtime = await asyncio.to_thread(build_application, settings, loop, verifier)
    # The ~100k long-lived objects of start-up (botocore's model, SQLAlchemy, Starlette) made
    # every full collection stop the event loop for 25-75 ms under load (measured, see
    # docs/benchmarks.md); frozen, they are never scanned again and a collection takes < 0.1 ms.
    gc.collect()
    gc.freeze()
    try:
        port = await runtime.start()
        log.info(
            "shadowlab listening on http://%s:%d (data dir %s)",
            settings.host,
            port,
            settings.data_dir,
        )
        await stop.wait()
    finally:
        log.info("shutting down")
        await runtime.stop()


def serve(settings: Settings) -> int:
    """Run until SIGTERM or SIGINT. Raises CredentialsError, before anything starts, when the
    settings name no credentials and do not allow unsigned access on loopback."""
    verifier = verifier_for(settings)
    if settings.allow_unsigned:
        log.warning("unsigned requests accepted (--allow-unsigned): anyone on this host may call")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await run(settings, stop, verifier)

    uvloop.run(main())
    return 0

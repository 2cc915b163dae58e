"""The ASGI app the sandbox starts (`uvicorn app:app`, port 8003): GET /health and POST /compress.
Settings come from COMPETITION_* variables; the compressor core loads in the background at start."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.routing import Route

from competition_app.routes import Routes
from competition_app.settings import CompetitionSettings


def create_app(settings: CompetitionSettings | None = None) -> Starlette:
    routes = Routes(settings or CompetitionSettings())

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        routes.start_loading()
        yield

    return Starlette(routes=[Route("/health", routes.health, methods=["GET"]),
                             Route("/compress", routes.compress, methods=["POST"])], lifespan=lifespan)


logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
app = create_app()

"""The application's state, typed. Each package that serves routes declares what its routes need as a frozen
dataclass (cdshooks.routes.HookState, audit.state.AuditState); create_app provides one of each when the
service starts, and a route receives its own with `Depends(injected(ItsState))`. This module is the one place
that reads Starlette's untyped `app.state`."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from starlette.applications import Starlette
from starlette.requests import Request

State = TypeVar("State")


def provide(app: Starlette, *states: object) -> None:
    """Make each state available to the app's routes, one per type (a later one of a type replaces the earlier)."""
    if not hasattr(app.state, "typed"):
        app.state.typed = {}
    app.state.typed.update({type(state): state for state in states})


def state_of(app: Starlette, kind: type[State]) -> State:
    """The app's state of this type (the service has started)."""
    found = app.state.typed[kind]
    if not isinstance(found, kind):
        raise TypeError(f"{kind.__name__} was provided as {type(found).__name__}")
    return found


def injected(kind: type[State]) -> Callable[[Request], Awaitable[State]]:
    """A FastAPI dependency: the state of this type. Async, though it does not wait for anything: FastAPI runs a
    plain function dependency in its thread pool, a hop per request for a dictionary lookup."""

    async def dependency(request: Request) -> State:
        return state_of(request.app, kind)

    dependency.__name__ = f"injected_{kind.__name__}"
    return dependency

"""Bearer-token authentication for the gateway, as a grpc.aio server interceptor.

Clients send `authorization: Bearer <token>` metadata. With no tokens configured every
call passes (a loopback development cluster). Once tokens are configured:

- a missing, malformed or unknown token gets UNAUTHENTICATED;
- an admin RPC (ADMIN_METHODS) with a valid token that is not an admin token gets
  PERMISSION_DENIED: the caller is known, just not allowed;
- the standard health service stays open, so load balancers need no secret.

Tokens are compared in constant time so a timing probe learns nothing about them.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import grpc
from grpc import aio

SERVICE = "homeport.v1.Scheduler"
ADMIN_METHODS = frozenset({f"/{SERVICE}/ListDeadLetters", f"/{SERVICE}/RequeueDeadLetter"})
OPEN_PREFIXES = ("/grpc.health.v1.Health/",)
METADATA_KEY = "authorization"
SCHEME = "bearer "

Continuation = Callable[[grpc.HandlerCallDetails], Awaitable["grpc.RpcMethodHandler[Any, Any]"]]
Refusal = Callable[[str, str], None]


def bearer_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """The metadata a client attaches to each call (empty when it has no token)."""
    return ((METADATA_KEY, f"Bearer {token}"),) if token else ()


def _token_of(details: grpc.HandlerCallDetails) -> str | None:
    for key, value in details.invocation_metadata or ():
        if key == METADATA_KEY and isinstance(value, str):
            if value.lower().startswith(SCHEME):
                return value[len(SCHEME) :].strip()
            return None
    return None


def _known(token: str, allowed: Sequence[str]) -> bool:
    # Every candidate is compared (no early exit) so timing does not reveal which matched.
    found = False
    for candidate in allowed:
        found |= hmac.compare_digest(token.encode(), candidate.encode())
    return found


def _refusing_handler(
    handler: grpc.RpcMethodHandler[Any, Any], code: grpc.StatusCode, message: str
) -> grpc.RpcMethodHandler[Any, Any]:
    """A handler of the same shape as `handler` that aborts with `code`."""

    async def unary(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(code, message)

    async def streaming(request: Any, context: aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        await context.abort(code, message)
        yield None  # pragma: no cover - abort raises; this only makes it a generator

    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(streaming, **kwargs)
    return grpc.unary_unary_rpc_method_handler(unary, **kwargs)


class TokenAuthInterceptor(aio.ServerInterceptor):  # type: ignore[type-arg]
    """Refuses calls without a configured bearer token, and admin calls without an admin one."""

    def __init__(
        self,
        tokens: Sequence[str],
        admin_tokens: Sequence[str],
        on_refusal: Refusal | None = None,
    ) -> None:
        self._tokens = tuple(tokens)
        self._admin_tokens = tuple(admin_tokens)
        self._on_refusal = on_refusal

    def verdict(self, method: str, token: str | None) -> tuple[grpc.StatusCode, str] | None:
        """None when `token` may call `method`, else the status to refuse with."""
        if not self._tokens or method.startswith(OPEN_PREFIXES):
            return None
        if token is None:
            return (
                grpc.StatusCode.UNAUTHENTICATED,
                "missing bearer token: send metadata 'authorization: Bearer <token>'",
            )
        if not _known(token, self._tokens) and not _known(token, self._admin_tokens):
            return grpc.StatusCode.UNAUTHENTICATED, "bearer token not recognised by this gateway"
        if method in ADMIN_METHODS and not _known(token, self._admin_tokens):
            return (
                grpc.StatusCode.PERMISSION_DENIED,
                f"{method.rsplit('/', 1)[-1]} is an admin RPC: it needs an admin token",
            )
        return None

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        refusal = self.verdict(method, _token_of(handler_call_details))
        if refusal is None or handler is None:
            return handler
        if self._on_refusal is not None:
            self._on_refusal(method, refusal[0].name)
        return _refusing_handler(handler, *refusal)

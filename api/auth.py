"""Bearer key -> tenant, checked in constant time; or a signed link token for browser-followable links."""
from __future__ import annotations

import functools
import hmac
import time
from typing import Callable, TypeVar

from flask import g, request

from api.context import ctx
from api.errors import ApiError
from api.lookup import job_tenant
from shared.links import link_signature
from shared.schema import ascii_int

F = TypeVar("F", bound=Callable[..., object])


def tenant_for_key(presented: str, api_keys: dict[str, str]) -> str | None:
    """Compare against every key so timing reveals neither which key matched nor how far."""
    found = None
    for key, tenant in api_keys.items():
        if hmac.compare_digest(presented.encode(), key.encode()):
            found = tenant
    return found


def bearer_tenant() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return None
    return tenant_for_key(presented.strip(), ctx().settings.api_keys)


def require_tenant(view: F) -> F:
    @functools.wraps(view)
    def wrapped(*args: object, **kwargs: object) -> object:
        tenant = bearer_tenant()
        if tenant is None:
            raise ApiError(401, "unauthorized", "send 'Authorization: Bearer <key>' with a valid API key",
                           headers={"WWW-Authenticate": 'Bearer realm="pdfq"'})
        g.tenant = tenant
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def token_tenant(token: str, job_id: str, route: str) -> str | None:
    """The tenant a valid, unexpired token was issued to; the tenant is checked against the job."""
    expires_raw, _, signature = token.partition(".")
    expires = ascii_int(expires_raw)
    if expires is None or expires < time.time():
        return None
    tenant = job_tenant(job_id)
    if tenant is None:
        return None
    expected = link_signature(ctx().settings.secret_key, tenant, job_id, route, expires)
    return tenant if hmac.compare_digest(expected, signature) else None


def require_tenant_or_token(route: str) -> Callable[[F], F]:
    """For links a browser follows (`<a href>`, EventSource): Bearer key or `?token=`."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapped(job_id: str, *args: object, **kwargs: object) -> object:
            token = request.args.get("token")
            tenant = token_tenant(token, job_id, route) if token else bearer_tenant()
            if tenant is None:
                raise ApiError(401, "unauthorized", "a valid API key or an unexpired link token is required")
            g.tenant = tenant
            return view(job_id, *args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorate

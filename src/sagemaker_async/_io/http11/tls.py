"""TLS for our pool: one process-wide default context, and ALPN held to http/1.1."""

from __future__ import annotations

import os
import ssl
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

__all__ = ["check_alpn", "default_ssl_context"]

_default_context: ssl.SSLContext | None = None


def default_ssl_context() -> ssl.SSLContext:
    """The process-wide TLS context used when no ``ssl_context`` is given.

    Built once, lazily: ``ssl.create_default_context()`` costs about 18 ms and 1 MB, so a
    context per client (what httpx does by default) is waste. It trusts the system's CA
    store (which honours ``SSL_CERT_FILE``/``SSL_CERT_DIR``); only when the system offers
    no CA certificates at all does it load certifi's bundle (certifi comes with httpx).
    ALPN offers ``http/1.1`` only.
    """
    global _default_context
    if _default_context is None:
        context = ssl.create_default_context()
        if not _system_has_ca_certs(context):
            import certifi  # httpx depends on it; imported only in this rare case

            context.load_verify_locations(cafile=certifi.where())
        context.set_alpn_protocols(["http/1.1"])
        _default_context = context
    return _default_context


def _system_has_ca_certs(context: ssl.SSLContext) -> bool:
    if context.cert_store_stats()["x509_ca"]:
        return True
    # A CA *directory* is loaded lazily by OpenSSL, so the store may look empty.
    paths = ssl.get_default_verify_paths()
    capath = paths.capath
    return bool(capath and os.path.isdir(capath) and os.listdir(capath))


#


def check_alpn(transport: asyncio.BaseTransport | None) -> None:
    """Refuse a connection on which the server picked a protocol other than HTTP/1.1."""
    ssl_object = None if transport is None else transport.get_extra_info("ssl_object")
    if ssl_object is not None:
        protocol = ssl_object.selected_alpn_protocol()
        if protocol not in (None, "http/1.1"):
            raise ssl.SSLError(f"server chose ALPN protocol {protocol!r}; only http/1.1 is spoken")

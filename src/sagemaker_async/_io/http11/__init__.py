"""A lean HTTP/1.1 client engine under httpx's interfaces, written for the hot path.

Why this exists: at 64 requests in flight, httpx's default transport (httpcore) spends
about 45% of its time in connection-pool bookkeeping. This package keeps httpx as the
*interface* (``httpx.Request`` in, ``httpx.Response`` out, usable as
``httpx.AsyncClient(transport=LeanTransport())``) and replaces the engine underneath:

* :mod:`.codec` — the HTTP/1.1 grammar, pure: request head out, response head and body
  framing in, strict (RFC 9112 and h11's verdicts; see its docstring for where it is
  stricter), tested on literal bytes;
* :mod:`.connection` — one connection as an ``asyncio.Protocol``: one future per wait, no
  tasks, no locks; small ``Content-Length`` bodies are read before returning;
* :mod:`.pool` — a LIFO of idle connections per origin and a deque of waiters;
* :mod:`.transport` — the ``httpx.AsyncBaseTransport``;
* :mod:`.tls` and :mod:`.routing` — the TLS context, and when httpx must carry a request
  instead (the environment names a proxy).
"""

from __future__ import annotations

from .pool import PoolStats
from .routing import proxy_configured
from .tls import default_ssl_context
from .transport import LeanTransport

__all__ = ["LeanTransport", "PoolStats", "default_ssl_context", "proxy_configured"]

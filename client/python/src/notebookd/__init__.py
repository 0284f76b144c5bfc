# SPDX-License-Identifier: MIT
"""notebookd: a client for notebookd's JSON-RPC 2.0 protocol over its Unix socket.

Standard library only. ``Client`` is blocking; ``AsyncClient`` is for asyncio and lets many tasks
share one connection. Both mirror doc/protocol.md method by method::

    import notebookd

    with notebookd.Client(user_id="alice") as nb:
        notebook = nb.get("demo-alice")
        nb.update_cell("demo-alice", notebook["cells"][0]["id"], code="x = 11",
                       expected_revision=notebook["revision"])

Errors the daemon sends are NotebookdError subclasses (RevisionConflict, NotFound,
AccessDenied, ...); transport failures are notebookd.ConnectionError.
"""

from ._common import (MAX_QUEUED_EVENTS, MAX_REPLY_BYTES, UNSET, ChangesLost, NotebookChanged, WatchEvent,
                      default_socket_path)
from ._errors import (AccessDenied, AlreadyExists, ConnectionError, InternalError, InvalidParams, InvalidRequest,
                      InvalidUtf8, LineTooLong, MethodNotFound, NoRemote, NotebookdError, NotFound, ParseError,
                      ProtocolError, RevisionConflict, StorageError, Timeout, TooDeep, TooLarge, TruncatedRequest,
                      error_from_reply)
from .aio import AsyncClient, AsyncWatch
from .client import Client, Watch

__version__ = "0.1.0"

__all__ = [
        "AccessDenied", "AlreadyExists", "AsyncClient", "AsyncWatch", "ChangesLost", "Client", "ConnectionError",
        "InternalError", "InvalidParams", "InvalidRequest", "InvalidUtf8", "LineTooLong", "MAX_QUEUED_EVENTS",
        "MAX_REPLY_BYTES", "MethodNotFound", "NoRemote", "NotFound", "NotebookChanged", "NotebookdError",
        "ParseError", "ProtocolError", "RevisionConflict", "StorageError", "Timeout", "TooDeep", "TooLarge",
        "TruncatedRequest", "UNSET", "Watch", "WatchEvent", "default_socket_path", "error_from_reply",
]

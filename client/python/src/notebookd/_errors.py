# SPDX-License-Identifier: MIT
"""The errors a notebookd client raises.

Two families, so that callers can tell "the daemon said no" from "the daemon could not be asked":

* NotebookdError and its subclasses: the daemon answered with a JSON-RPC error (doc/protocol.md,
  "Errors"). The connection is still good.
* ConnectionError (a subclass of the built-in ConnectionError, hence of OSError): the socket
  could not be opened, the daemon went away, a reply was malformed or too long, or a timeout
  passed. The connection is closed; open a new client.
"""

from __future__ import annotations

import builtins
from typing import Any, Dict, Optional, Type


class NotebookdError(Exception):
        """A JSON-RPC error object sent by the daemon.

        code is the stable part (see the class for each code below), message a sentence for
        people, data the error's ``data`` member (a dict, or None when the daemon sent none).
        """

        #: The JSON-RPC error code this class stands for (None on the base class).
        CODE: Optional[int] = None

        def __init__(self, code: int, message: str, data: Any = None) -> None:
                super().__init__(code, message, data)
                self.code = code
                self.message = message
                self.data = data

        def __str__(self) -> str:
                text = f"{self.message} ({self.code})"
                if self.data is not None:
                        text += f" {self.data!r}"
                return text

        @property
        def param(self) -> Optional[str]:
                """The parameter at fault (``data.param``), when the daemon named one."""
                if isinstance(self.data, dict) and isinstance(self.data.get("param"), str):
                        return self.data["param"]
                return None


class ParseError(NotebookdError):
        """-32700: the daemon could not parse the request line as JSON."""
        CODE = -32700


class InvalidRequest(NotebookdError):
        """-32600: the request was not a valid JSON-RPC 2.0 request."""
        CODE = -32600


class MethodNotFound(NotebookdError):
        """-32601: the daemon has no such method (an older daemon, or a typo)."""
        CODE = -32601


class InvalidParams(NotebookdError):
        """-32602: a parameter is missing, unknown, of the wrong type or has a bad value
        (``.param`` names it). Nothing was changed."""
        CODE = -32602


class InternalError(NotebookdError):
        """-32603: the daemon failed in a way it did not expect."""
        CODE = -32603


class LineTooLong(NotebookdError):
        """-32000: the request line was longer than the daemon accepts (``data.limit``)."""
        CODE = -32000


class TooDeep(NotebookdError):
        """-32001: JSON nested deeper than the daemon accepts (``data.limit``)."""
        CODE = -32001


class InvalidUtf8(NotebookdError):
        """-32002: invalid UTF-8, or a ``\\u0000`` escape, in the request."""
        CODE = -32002


class TruncatedRequest(NotebookdError):
        """-32003: the connection was closed in the middle of a request line."""
        CODE = -32003


class NotFound(NotebookdError):
        """-32010: no such notebook (``data.notebook_id``) or cell (``data.cell_id``), or no
        conflict to resolve there (``sync.resolve``)."""
        CODE = -32010


class RevisionConflict(NotebookdError):
        """-32011: ``expected_revision`` was not the notebook's revision; nothing changed.
        ``.current_revision`` is the notebook's revision now."""
        CODE = -32011

        @property
        def current_revision(self) -> Optional[int]:
                """The notebook's current revision, as the daemon reported it."""
                if isinstance(self.data, dict):
                        rev = self.data.get("current_revision")
                        if isinstance(rev, int) and not isinstance(rev, bool):
                                return rev
                return None


class AccessDenied(NotebookdError):
        """-32012: this peer (uid) may not act for that user_id. Says nothing about whether the
        user or notebook exists."""
        CODE = -32012


class TooLarge(NotebookdError):
        """-32013: a value over its limit, too many cells or watches, a notebook over its size
        (``data.param``, ``data.limit``)."""
        CODE = -32013


class AlreadyExists(NotebookdError):
        """-32014: a notebook or cell with that id already exists."""
        CODE = -32014


class StorageError(NotebookdError):
        """-32020: the database could not commit (disk full, I/O error); nothing changed.
        Asking again may succeed."""
        CODE = -32020


class NoRemote(NotebookdError):
        """-32030: the daemon runs local-only (no DynamoDB remote configured)."""
        CODE = -32030


ERROR_CLASSES: Dict[int, Type[NotebookdError]] = {
        cls.CODE: cls for cls in (
                ParseError, InvalidRequest, MethodNotFound, InvalidParams, InternalError, LineTooLong,
                TooDeep, InvalidUtf8, TruncatedRequest, NotFound, RevisionConflict, AccessDenied,
                TooLarge, AlreadyExists, StorageError, NoRemote)
        if cls.CODE is not None
}


def error_from_reply(error: Any) -> NotebookdError:
        """The exception for a reply's ``error`` member: the class of its code, or
        NotebookdError itself for a code this client does not know."""
        if not isinstance(error, dict):
                return NotebookdError(-32603, f"malformed error object: {error!r}", None)
        code = error.get("code")
        message = error.get("message")
        if not isinstance(message, str):
                message = "(no message)"
        if not isinstance(code, int) or isinstance(code, bool):
                return NotebookdError(-32603, f"error without an integer code: {message}", error.get("data"))
        cls = ERROR_CLASSES.get(code, NotebookdError)
        return cls(code, message, error.get("data"))


class ConnectionError(builtins.ConnectionError):
        """The daemon could not be reached, went away, or sent something that is not a valid
        reply. The connection is closed afterwards; every later call raises this too."""


class ProtocolError(ConnectionError):
        """The daemon sent a line that is not a valid JSON-RPC 2.0 reply or notification, or one
        longer than the client's limit."""


class Timeout(ConnectionError, builtins.TimeoutError):
        """No reply came within the blocking client's timeout. The reply may still come, so the
        connection is closed rather than left out of step."""

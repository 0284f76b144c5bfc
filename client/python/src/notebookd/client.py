# SPDX-License-Identifier: MIT
"""The blocking client: one connection, one request at a time, from one thread at a time."""

from __future__ import annotations

import collections
import socket
import time
from typing import Any, Callable, Deque, Iterator, List, Optional, Union

from ._common import (MAX_QUEUED_EVENTS, MAX_REPLY_BYTES, UNSET, ChangesLost, JsonObject, Unset, WatchEvent,
                      WatchKey, WatchRouter, check_reply, decode_line, default_socket_path, encode_request,
                      is_notification, opt, params, unwrap)
from ._errors import ConnectionError, ProtocolError, Timeout, error_from_reply

_RECV_BYTES = 1 << 20


class Client:
        """A blocking connection to notebookd (doc/protocol.md).

        ``Client(socket_path=None, *, user_id=None, timeout=None)`` connects at once (raising
        notebookd.ConnectionError if it cannot). socket_path defaults to default_socket_path().
        user_id, when given, is sent with every method that takes one and was not given its own.
        timeout (seconds) bounds each call, from sending to the end of its reply; after it passes
        the connection is closed (notebookd.Timeout). Use it as a context manager, or call close().

        Methods that return ``{"notebook": ...}`` in the protocol return the notebook itself; the
        others return the result object as the daemon sent it (plain dicts, lists, str, int,
        float, bool and None: numbers pass through json as they are). A parameter left at its
        default is not sent. Errors the daemon sends raise the NotebookdError subclass of their
        code; the connection stays usable.

        One Client must not be used from two threads at once: give each thread its own, or use
        AsyncClient to share one connection among many tasks.
        """

        def __init__(self, socket_path: Optional[str] = None, *, user_id: Optional[str] = None,
                     timeout: Optional[float] = None, max_reply_bytes: int = MAX_REPLY_BYTES) -> None:
                self.socket_path = socket_path or default_socket_path()
                self.user_id = user_id
                self.timeout = timeout
                self.max_reply_bytes = max_reply_bytes
                self._buf = bytearray()
                self._scan = 0  # bytes of _buf known to hold no newline
                self._next_id = 1
                self._router = WatchRouter()
                self._sock: Optional[socket.socket] = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                        self._sock.settimeout(timeout)
                        self._sock.connect(self.socket_path)
                except socket.timeout:
                        self.close()
                        raise Timeout(f"cannot connect to notebookd at {self.socket_path}: timed out") from None
                except OSError as e:
                        self.close()
                        raise ConnectionError(e.errno, f"cannot connect to notebookd at {self.socket_path}: "
                                              f"{e.strerror or e}") from e

        # -- connection ------------------------------------------------------------------------

        def close(self) -> None:
                """Closes the connection (its watches end with it). Closing twice is fine."""
                sock, self._sock = self._sock, None
                if sock is not None:
                        sock.close()

        @property
        def closed(self) -> bool:
                return self._sock is None

        def __enter__(self) -> "Client":
                return self

        def __exit__(self, *exc: Any) -> None:
                self.close()

        def _fail(self, exc: ConnectionError) -> ConnectionError:
                self.close()
                return exc

        def _send(self, data: bytes, deadline: Optional[float]) -> None:
                if self._sock is None:
                        raise ConnectionError("the connection to notebookd is closed")
                try:
                        self._sock.settimeout(_left(deadline))
                        self._sock.sendall(data)
                except socket.timeout:
                        raise self._fail(Timeout(f"notebookd did not take the request within {self.timeout} s")) \
                                from None
                except OSError as e:
                        raise self._fail(ConnectionError(f"lost the connection to notebookd: {e}")) from e

        def _read_message(self, deadline: Optional[float], block: bool = True) -> Optional[JsonObject]:
                """The next message from the daemon; None when deadline passes first (only when
                block is False: a call's deadline is an error)."""
                while True:
                        nl = self._buf.find(b"\n", self._scan)
                        if nl >= 0:
                                line = bytes(self._buf[:nl])
                                del self._buf[:nl + 1]
                                self._scan = 0
                                if not line.strip():
                                        continue
                                try:
                                        return decode_line(line)
                                except ProtocolError as e:
                                        raise self._fail(e) from None
                        self._scan = len(self._buf)
                        if len(self._buf) > self.max_reply_bytes:
                                raise self._fail(ProtocolError(
                                        f"a line from notebookd is longer than {self.max_reply_bytes} bytes"))
                        if self._sock is None:
                                raise ConnectionError("the connection to notebookd is closed")
                        try:
                                self._sock.settimeout(_left(deadline))
                                chunk = self._sock.recv(_RECV_BYTES)
                        except socket.timeout:
                                if not block:
                                        return None
                                raise self._fail(Timeout(f"no reply from notebookd within {self.timeout} s")) from None
                        except OSError as e:
                                raise self._fail(ConnectionError(f"lost the connection to notebookd: {e}")) from e
                        if not chunk:
                                raise self._fail(ConnectionError("notebookd closed the connection"))
                        self._buf += chunk

        def _request(self, method: str, p: Optional[JsonObject],
                     on_result: Optional[Callable[[Any], None]] = None) -> Any:
                req_id = self._next_id
                self._next_id += 1
                data = encode_request(req_id, method, p)
                deadline = None if self.timeout is None else time.monotonic() + self.timeout
                self._send(data, deadline)
                while True:
                        msg = self._read_message(deadline)
                        assert msg is not None
                        if is_notification(msg):
                                self._router.dispatch(msg)
                                continue
                        rid = msg.get("id")
                        # An error the daemon could not tie to a request (a line too long) has id
                        # null; it answers the request in flight, as replies come in order.
                        if rid != req_id and not (rid is None and "error" in msg):
                                raise self._fail(ProtocolError(f"a reply to request {rid!r} while waiting for "
                                                               f"{req_id}"))
                        try:
                                check_reply(msg)
                        except ProtocolError as e:
                                raise self._fail(e) from None
                        if "error" in msg:
                                raise error_from_reply(msg["error"])
                        if on_result is not None:
                                on_result(msg["result"])
                        return msg["result"]

        def call(self, method: str, /, **params: Any) -> Any:
                """Calls any method with these parameters, sent as given (None is sent as null),
                and returns its result. For methods this client has no wrapper for."""
                return self._request(method, params)

        def _uid(self, user_id: Optional[str]) -> Any:
                return opt(user_id if user_id is not None else self.user_id)

        # -- notebooks -------------------------------------------------------------------------

        def list_page(self, *, user_id: Optional[str] = None, limit: Optional[int] = None,
                      cursor: Optional[str] = None) -> JsonObject:
                """One page of ``notebook.list``: ``{"user_id", "provisioned", "notebooks",
                "next_cursor"}``. Ask again with ``cursor=next_cursor`` until it is None. A user's
                first list provisions ``blank-USER`` and ``demo-USER``."""
                return self._request("notebook.list", params(user_id=self._uid(user_id), limit=opt(limit),
                                                             cursor=opt(cursor)))

        def iter_notebooks(self, *, user_id: Optional[str] = None,
                           page_size: Optional[int] = None) -> Iterator[JsonObject]:
                """Every notebook summary of the user, following ``next_cursor`` page by page
                (page_size: the ``limit`` of each page, 1 to 1000; the daemon's default is 1000).
                Other calls on this client may be made between items."""
                cursor = None
                while True:
                        page = self.list_page(user_id=user_id, limit=page_size, cursor=cursor)
                        yield from page["notebooks"]
                        cursor = page.get("next_cursor")
                        if cursor is None:
                                return

        def list_notebooks(self, *, user_id: Optional[str] = None,
                           page_size: Optional[int] = None) -> List[JsonObject]:
                """All notebook summaries of the user (every page), ordered by creation time."""
                return list(self.iter_notebooks(user_id=user_id, page_size=page_size))

        def get(self, notebook_id: str, *, user_id: Optional[str] = None,
                revision: Optional[int] = None) -> JsonObject:
                """The notebook with its cells (``notebook.get``); NotFound if there is none. With
                revision, that earlier revision as kept in its history (needs a daemon with
                ``notebook.history``; NotFound when it is not kept)."""
                return unwrap("notebook")(self._request("notebook.get", params(
                        user_id=self._uid(user_id), notebook_id=notebook_id, revision=opt(revision))))

        def create(self, notebook_id: Optional[str] = None, *, user_id: Optional[str] = None,
                   name: Union[str, None, Unset] = UNSET, db_conn_string: Union[str, None, Unset] = UNSET,
                   ttl: Union[int, None, Unset] = UNSET, cells: Optional[List[JsonObject]] = None) -> JsonObject:
                """Creates a notebook (``notebook.create``) and returns it. notebook_id defaults to
                a new UUID; cells are cell objects with ``id`` (optional), ``type``, ``code``,
                ``status``, ``stdout``, ``outputs``, ``error``, ``reads``, ``writes``.
                AlreadyExists if a live notebook has that id."""
                return unwrap("notebook")(self._request("notebook.create", params(
                        user_id=self._uid(user_id), notebook_id=opt(notebook_id), name=name,
                        db_conn_string=db_conn_string, ttl=ttl, cells=opt(cells))))

        def update(self, notebook_id: str, *, user_id: Optional[str] = None, expected_revision: Optional[int] = None,
                   name: Union[str, None, Unset] = UNSET, db_conn_string: Union[str, None, Unset] = UNSET,
                   ttl: Union[int, None, Unset] = UNSET, cells: Optional[List[JsonObject]] = None) -> JsonObject:
                """Changes a notebook's fields (``notebook.update``; None clears a field) and returns
                its summary. cells, on a daemon that accepts it, replaces all the cells at once.
                RevisionConflict if expected_revision is given and not the notebook's revision."""
                return unwrap("notebook")(self._request("notebook.update", params(
                        user_id=self._uid(user_id), notebook_id=notebook_id, expected_revision=opt(expected_revision),
                        name=name, db_conn_string=db_conn_string, ttl=ttl, cells=opt(cells))))

        def delete(self, notebook_id: str, *, user_id: Optional[str] = None,
                   expected_revision: Optional[int] = None) -> JsonObject:
                """Deletes a notebook (``notebook.delete``): ``{"notebook_id", "revision"}``."""
                return self._request("notebook.delete", params(
                        user_id=self._uid(user_id), notebook_id=notebook_id, expected_revision=opt(expected_revision)))

        # -- cells -----------------------------------------------------------------------------

        def create_cell(self, notebook_id: str, *, user_id: Optional[str] = None,
                        expected_revision: Optional[int] = None, cell_id: Optional[str] = None,
                        position: Optional[int] = None, after_cell_id: Union[str, None, Unset] = UNSET,
                        type: Optional[str] = None, code: Optional[str] = None, status: Optional[str] = None,
                        stdout: Optional[str] = None, outputs: Optional[List[JsonObject]] = None,
                        error: Union[str, None, Unset] = UNSET, reads: Optional[List[str]] = None,
                        writes: Optional[List[str]] = None) -> JsonObject:
                """Adds a cell (``cell.create``) at position, or after after_cell_id (None: at the
                front), else at the end. Returns ``{"notebook_id", "revision", "updated_at",
                "position", "cell"}``."""
                return self._request("cell.create", params(
                        user_id=self._uid(user_id), notebook_id=notebook_id, expected_revision=opt(expected_revision),
                        cell_id=opt(cell_id), position=opt(position), after_cell_id=after_cell_id, type=opt(type),
                        code=opt(code), status=opt(status), stdout=opt(stdout), outputs=opt(outputs), error=error,
                        reads=opt(reads), writes=opt(writes)))

        def update_cell(self, notebook_id: str, cell_id: str, *, user_id: Optional[str] = None,
                        expected_revision: Optional[int] = None, type: Optional[str] = None,
                        code: Optional[str] = None, status: Optional[str] = None, stdout: Optional[str] = None,
                        outputs: Optional[List[JsonObject]] = None, error: Union[str, None, Unset] = UNSET,
                        reads: Optional[List[str]] = None, writes: Optional[List[str]] = None) -> JsonObject:
                """Changes the fields given of one cell (``cell.update``; ``error=None`` clears
                the error). Returns ``{"notebook_id", "revision", "updated_at", "position",
                "cell"}``."""
                return self._request("cell.update", params(
                        user_id=self._uid(user_id), notebook_id=notebook_id, cell_id=cell_id,
                        expected_revision=opt(expected_revision), type=opt(type), code=opt(code), status=opt(status),
                        stdout=opt(stdout), outputs=opt(outputs), error=error, reads=opt(reads), writes=opt(writes)))

        def delete_cell(self, notebook_id: str, cell_id: str, *, user_id: Optional[str] = None,
                        expected_revision: Optional[int] = None) -> JsonObject:
                """Deletes one cell (``cell.delete``): ``{"notebook_id", "revision", "updated_at"}``."""
                return self._request("cell.delete", params(
                        user_id=self._uid(user_id), notebook_id=notebook_id, cell_id=cell_id,
                        expected_revision=opt(expected_revision)))

        def move_cell(self, notebook_id: str, cell_id: str, *, position: Optional[int] = None,
                      after_cell_id: Union[str, None, Unset] = UNSET, user_id: Optional[str] = None,
                      expected_revision: Optional[int] = None) -> JsonObject:
                """Moves a cell to position (its index afterwards) or after after_cell_id (None: to
                the front) (``cell.move``): ``{"notebook_id", "revision", "updated_at", "position"}``."""
                return self._request("cell.move", params(
                        user_id=self._uid(user_id), notebook_id=notebook_id, cell_id=cell_id, position=opt(position),
                        after_cell_id=after_cell_id, expected_revision=opt(expected_revision)))

        def reset_demo(self, *, user_id: Optional[str] = None, expected_revision: Optional[int] = None) -> JsonObject:
                """Rewrites ``demo-USER`` to the current demo content (``demo.reset``) and returns it."""
                return unwrap("notebook")(self._request("demo.reset", params(
                        user_id=self._uid(user_id), expected_revision=opt(expected_revision))))

        def graph(self, notebook_id: str, *, user_id: Optional[str] = None) -> JsonObject:
                """The dependency graph of the cells (``notebook.graph``): ``{"notebook_id",
                "revision", "edges", "order", "cycles"}``."""
                return self._request("notebook.graph", params(user_id=self._uid(user_id), notebook_id=notebook_id))

        # -- watches ---------------------------------------------------------------------------

        def watch(self, notebook_id: Optional[str] = None, *, user_id: Optional[str] = None) -> "Watch":
                """Subscribes to changes of one notebook, or of all the user's notebooks when
                notebook_id is None (``notebook.watch``), and returns a Watch: iterate over it (or
                call its get(timeout)) for NotebookChanged and ChangesLost events; close it (or
                leave its with block) to unsubscribe. Events that arrive while other calls wait
                for their replies are kept for it."""
                w = Watch(self, notebook_id)

                def subscribed(result: Any) -> None:
                        w._key = (result.get("user_id") if isinstance(result, dict) else None, notebook_id)
                        self._router.add(w._key, w._deliver)

                self._request("notebook.watch", params(user_id=self._uid(user_id), notebook_id=opt(notebook_id)),
                              subscribed)
                return w

        def unwatch(self, notebook_id: Optional[str] = None, *, user_id: Optional[str] = None) -> JsonObject:
                """``notebook.unwatch`` as it is: ends the daemon's subscription for every Watch of
                this connection on that notebook (Watch.close() does this for one watch)."""
                return self._request("notebook.unwatch", params(user_id=self._uid(user_id),
                                                                notebook_id=opt(notebook_id)))

        def _wait_event(self, w: "Watch", timeout: Optional[float]) -> Optional[WatchEvent]:
                deadline = None if timeout is None else time.monotonic() + timeout
                while not w._events:
                        if w._closed:
                                raise ValueError("the watch is closed")
                        msg = self._read_message(deadline, block=False)
                        if msg is None:
                                return None
                        if not is_notification(msg):
                                raise self._fail(ProtocolError("a reply to no request in flight: id "
                                                               f"{msg.get('id')!r}"))
                        self._router.dispatch(msg)
                return w._events.popleft()

        # -- sync ------------------------------------------------------------------------------

        def sync_pull(self) -> JsonObject:
                """Asks the sync engine to look for newer versions now (``sync.pull``);
                NoRemote on a local-only daemon."""
                return self._request("sync.pull", None)

        def sync_conflicts(self, notebook_id: Optional[str] = None, *,
                           user_id: Optional[str] = None) -> List[JsonObject]:
                """The conflicts sync left to resolve (``sync.conflicts``), of one notebook or all."""
                return unwrap("conflicts")(self._request("sync.conflicts", params(
                        user_id=self._uid(user_id), notebook_id=opt(notebook_id))))

        def sync_resolve(self, notebook_id: str, keep: str, *, cell_id: Optional[str] = None,
                         field: Optional[str] = None, user_id: Optional[str] = None,
                         expected_revision: Optional[int] = None) -> JsonObject:
                """Resolves the conflict of cell_id or field, or all of the notebook's, keeping
                ``"local"``, ``"server"`` or ``"both"`` (``sync.resolve``)."""
                return self._request("sync.resolve", params(
                        user_id=self._uid(user_id), notebook_id=notebook_id, cell_id=opt(cell_id), field=opt(field),
                        keep=keep, expected_revision=opt(expected_revision)))

        # -- the daemon ------------------------------------------------------------------------

        def status(self) -> JsonObject:
                """``daemon.status``: version, uptime, sync state, who this peer is."""
                return self._request("daemon.status", None)

        # Methods of newer daemons: MethodNotFound from a daemon that does not have them.

        def history(self, notebook_id: str, *, user_id: Optional[str] = None, limit: Optional[int] = None,
                    before: Optional[int] = None) -> Any:
                """``notebook.history``: the revisions of the notebook that can be restored, newest
                first (``{"notebook_id", "revision", "revisions"}``, as the daemon sends it; needs a
                daemon that has it); ``before``: only the revisions below it."""
                return self._request("notebook.history", params(
                        user_id=self._uid(user_id), notebook_id=notebook_id, limit=opt(limit), before=opt(before)))

        def restore(self, notebook_id: str, revision: int, expected_revision: Optional[int] = None, *,
                    user_id: Optional[str] = None) -> JsonObject:
                """``notebook.restore``: makes the content of an earlier revision (one history() lists)
                the newest revision, and returns the notebook (needs a daemon that has it)."""
                return unwrap("notebook")(self._request("notebook.restore", params(
                        user_id=self._uid(user_id), notebook_id=notebook_id, revision=revision,
                        expected_revision=opt(expected_revision))))

        def metrics(self) -> Any:
                """``daemon.metrics`` (needs a daemon that has it)."""
                return self._request("daemon.metrics", None)


class Watch:
        """A subscription made by Client.watch(). Iterating blocks until the next event;
        get(timeout) returns None when none comes in time. Events are NotebookChanged or
        ChangesLost (read again what you watch). Raises notebookd.ConnectionError when the
        connection is lost."""

        def __init__(self, client: Client, notebook_id: Optional[str]) -> None:
                self._client = client
                self.notebook_id = notebook_id
                self._key: WatchKey = (None, notebook_id)  # type: ignore[assignment]
                self._events: Deque[WatchEvent] = collections.deque()
                self._closed = False

        @property
        def user_id(self) -> Optional[str]:
                """The user whose notebooks are watched (as the daemon resolved it)."""
                return self._key[0]

        def _deliver(self, ev: WatchEvent) -> None:
                if len(self._events) >= MAX_QUEUED_EVENTS:
                        self._events.clear()
                        ev = ChangesLost()
                self._events.append(ev)

        def get(self, timeout: Optional[float] = None) -> Optional[WatchEvent]:
                """The next event, waiting at most timeout seconds (None: forever); None if
                none came."""
                if self._events:
                        return self._events.popleft()
                return self._client._wait_event(self, timeout)

        def __iter__(self) -> Iterator[WatchEvent]:
                return self

        def __next__(self) -> WatchEvent:
                if self._closed and not self._events:
                        raise StopIteration
                ev = self.get()
                assert ev is not None
                return ev

        def close(self) -> None:
                """Unsubscribes (when no other Watch of this client watches the same thing) and
                forgets pending events. A lost connection is not an error here."""
                if self._closed:
                        return
                self._closed = True
                self._events.clear()
                if self._client._router.remove(self._key, self._deliver) and not self._client.closed:
                        try:
                                self._client._request("notebook.unwatch", params(user_id=opt(self._key[0]),
                                                                                 notebook_id=opt(self.notebook_id)))
                        except ConnectionError:
                                pass

        def __enter__(self) -> "Watch":
                return self

        def __exit__(self, *exc: Any) -> None:
                self.close()


def _left(deadline: Optional[float]) -> Optional[float]:
        if deadline is None:
                return None
        # Never 0: settimeout(0) would make the socket non-blocking instead of timing out.
        return max(deadline - time.monotonic(), 1e-6)

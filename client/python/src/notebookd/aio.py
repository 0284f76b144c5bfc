# SPDX-License-Identifier: MIT
"""The asyncio client: one connection shared by many tasks, with requests pipelined."""

from __future__ import annotations

import asyncio
import collections
from typing import Any, AsyncIterator, Callable, Deque, Dict, Generator, List, Optional, Tuple, Union

from ._common import (MAX_QUEUED_EVENTS, MAX_REPLY_BYTES, UNSET, ChangesLost, JsonObject, Unset, WatchEvent,
                      WatchKey, WatchRouter, check_reply, decode_line, default_socket_path, encode_request,
                      is_notification, opt, params, unwrap)
from ._errors import ConnectionError, ProtocolError, error_from_reply

_Pending = Tuple["asyncio.Future[Any]", Optional[Callable[[Any], None]]]


class AsyncClient:
        """An asyncio connection to notebookd (doc/protocol.md).

        ``async with AsyncClient(socket_path=None, *, user_id=None) as client:`` connects (or
        ``client = await AsyncClient(...).connect()``, then ``await client.close()``); raises
        notebookd.ConnectionError if it cannot. socket_path defaults to default_socket_path();
        user_id, when given, is sent with every method that takes one and was not given its own.

        Any number of tasks may call methods at the same time: requests are written as they come
        (pipelined) and each reply is matched to its request by id, so a slow reply (a large
        notebook) does not hold the others' requests back on the client. There is no timeout of
        its own; use ``asyncio.wait_for()`` or ``asyncio.timeout()``. A call cancelled after its
        request was sent still runs in the daemon; its reply is dropped.

        Methods and results are those of the blocking Client, as coroutines: a notebook for
        the methods whose protocol result is ``{"notebook": ...}``, else the result as sent.
        Errors the daemon sends raise the NotebookdError subclass of their code; the connection
        stays usable. If the connection is lost, every call in flight and every later one, and
        every watch, raises notebookd.ConnectionError.
        """

        def __init__(self, socket_path: Optional[str] = None, *, user_id: Optional[str] = None,
                     max_reply_bytes: int = MAX_REPLY_BYTES) -> None:
                self.socket_path = socket_path or default_socket_path()
                self.user_id = user_id
                self.max_reply_bytes = max_reply_bytes
                self._reader: Optional[asyncio.StreamReader] = None
                self._writer: Optional[asyncio.StreamWriter] = None
                self._read_task: Optional["asyncio.Task[None]"] = None
                self._write_lock = asyncio.Lock()
                self._pending: Dict[int, _Pending] = {}
                self._next_id = 1
                self._router = WatchRouter()
                self._watches: List[AsyncWatch] = []
                self._error: Optional[ConnectionError] = None

        # -- connection ------------------------------------------------------------------------

        async def connect(self) -> "AsyncClient":
                """Opens the connection; returns the client."""
                if self._writer is not None:
                        raise RuntimeError("already connected")
                try:
                        # The reader's limit is the longest line it takes: asyncio's default, 64 KiB,
                        # is far below a notebook's size.
                        self._reader, self._writer = await asyncio.open_unix_connection(
                                self.socket_path, limit=self.max_reply_bytes)
                except OSError as e:
                        raise ConnectionError(e.errno, f"cannot connect to notebookd at {self.socket_path}: "
                                              f"{e.strerror or e}") from e
                self._error = None
                self._read_task = asyncio.get_running_loop().create_task(self._read_loop())
                return self

        async def close(self) -> None:
                """Closes the connection: calls in flight raise ConnectionError, watches end."""
                self._abort(ConnectionError("the connection to notebookd was closed by this client"), by_us=True)
                task, self._read_task = self._read_task, None
                if task is not None and task is not asyncio.current_task():
                        task.cancel()
                        try:
                                await task
                        except (asyncio.CancelledError, Exception):
                                pass

        @property
        def closed(self) -> bool:
                return self._writer is None

        async def __aenter__(self) -> "AsyncClient":
                return await self.connect()

        async def __aexit__(self, *exc: Any) -> None:
                await self.close()

        def _abort(self, exc: ConnectionError, by_us: bool = False) -> None:
                """Ends the connection: every call waiting gets exc, every watch ends (with exc,
                unless this client closed it)."""
                if self._error is None:
                        self._error = exc
                writer, self._writer = self._writer, None
                if writer is not None:
                        writer.close()
                pending, self._pending = self._pending, {}
                for fut, _ in pending.values():
                        if not fut.done():
                                fut.set_exception(exc)
                watches, self._watches = self._watches, []
                for w in watches:
                        w._end(None if by_us else exc)

        async def _read_loop(self) -> None:
                assert self._reader is not None
                reader = self._reader
                try:
                        while True:
                                try:
                                        line = await reader.readuntil(b"\n")
                                except asyncio.IncompleteReadError:
                                        raise ConnectionError("notebookd closed the connection") from None
                                except asyncio.LimitOverrunError:
                                        raise ProtocolError("a line from notebookd is longer than "
                                                            f"{self.max_reply_bytes} bytes") from None
                                if line.strip():
                                        self._handle(decode_line(line))
                except ConnectionError as e:
                        self._abort(e)
                except OSError as e:
                        self._abort(ConnectionError(f"lost the connection to notebookd: {e}"))
                except Exception as e:  # a bug here must not leave calls waiting for ever
                        self._abort(ProtocolError(f"cannot handle a message from notebookd: {e!r}"))

        def _handle(self, msg: JsonObject) -> None:
                if is_notification(msg):
                        self._router.dispatch(msg)
                        return
                check_reply(msg)
                rid = msg.get("id")
                entry = self._pending.pop(rid, None) if isinstance(rid, (int, str)) else None
                if entry is None and rid is None and "error" in msg and self._pending:
                        # An error the daemon could not tie to a request (a line too long) answers
                        # the oldest request in flight: replies come in request order.
                        entry = self._pending.pop(next(iter(self._pending)))
                if entry is None:
                        raise ProtocolError(f"a reply to no request in flight: id {rid!r}")
                fut, on_result = entry
                if "error" in msg:
                        if not fut.done():
                                fut.set_exception(error_from_reply(msg["error"]))
                        return
                # on_result runs here, before the next line is read: a watch is registered
                # before any notification that follows its reply.
                if on_result is not None:
                        on_result(msg["result"])
                if not fut.done():
                        fut.set_result(msg["result"])

        async def _request(self, method: str, p: Optional[JsonObject],
                           on_result: Optional[Callable[[Any], None]] = None) -> Any:
                if self._error is not None:
                        raise ConnectionError(str(self._error))
                if self._writer is None:
                        raise ConnectionError("not connected: call connect() first (or use async with)")
                req_id = self._next_id
                self._next_id += 1
                data = encode_request(req_id, method, p)
                fut: "asyncio.Future[Any]" = asyncio.get_running_loop().create_future()
                self._pending[req_id] = (fut, on_result)
                sent = False
                try:
                        async with self._write_lock:
                                writer = self._writer
                                if writer is None:
                                        raise ConnectionError(str(self._error or "the connection is closed"))
                                writer.write(data)
                                sent = True
                                await writer.drain()
                except asyncio.CancelledError:
                        # Not sent: forget it. Sent: the reply will come and be dropped.
                        if not sent:
                                self._pending.pop(req_id, None)
                        raise
                except OSError as e:
                        self._pending.pop(req_id, None)
                        err = e if isinstance(e, ConnectionError) else ConnectionError(
                                f"lost the connection to notebookd: {e}")
                        self._abort(err)
                        raise err from None
                return await fut

        async def call(self, method: str, /, **params: Any) -> Any:
                """Calls any method with these parameters, sent as given (None is sent as null),
                and returns its result. For methods this client has no wrapper for."""
                return await self._request(method, params)

        def _uid(self, user_id: Optional[str]) -> Any:
                return opt(user_id if user_id is not None else self.user_id)

        # -- notebooks -------------------------------------------------------------------------

        async def list_page(self, *, user_id: Optional[str] = None, limit: Optional[int] = None,
                            cursor: Optional[str] = None) -> JsonObject:
                """One page of ``notebook.list``: ``{"user_id", "provisioned", "notebooks",
                "next_cursor"}``. Ask again with ``cursor=next_cursor`` until it is None. A user's
                first list provisions ``blank-USER`` and ``demo-USER``."""
                return await self._request("notebook.list", params(user_id=self._uid(user_id), limit=opt(limit),
                                                             cursor=opt(cursor)))

        async def iter_notebooks(self, *, user_id: Optional[str] = None,
                                 page_size: Optional[int] = None) -> AsyncIterator[JsonObject]:
                """Every notebook summary of the user, following ``next_cursor`` page by page
                (an async generator; page_size: the ``limit`` of each page, 1 to 1000)."""
                cursor = None
                while True:
                        page = await self.list_page(user_id=user_id, limit=page_size, cursor=cursor)
                        for summary in page["notebooks"]:
                                yield summary
                        cursor = page.get("next_cursor")
                        if cursor is None:
                                return

        async def list_notebooks(self, *, user_id: Optional[str] = None,
                                 page_size: Optional[int] = None) -> List[JsonObject]:
                """All notebook summaries of the user (every page), ordered by creation time."""
                return [s async for s in self.iter_notebooks(user_id=user_id, page_size=page_size)]

        async def get(self, notebook_id: str, *, user_id: Optional[str] = None,
                      revision: Optional[int] = None) -> JsonObject:
                """The notebook with its cells (``notebook.get``); NotFound if there is none. With
                revision, that earlier revision as kept in its history (needs a daemon with
                ``notebook.history``; NotFound when it is not kept)."""
                return unwrap("notebook")(await self._request("notebook.get", params(
                        user_id=self._uid(user_id), notebook_id=notebook_id, revision=opt(revision))))

        async def create(self, notebook_id: Optional[str] = None, *, user_id: Optional[str] = None,
                         name: Union[str, None, Unset] = UNSET, db_conn_string: Union[str, None, Unset] = UNSET,
                         ttl: Union[int, None, Unset] = UNSET, cells: Optional[List[JsonObject]] = None) -> JsonObject:
                """Creates a notebook (``notebook.create``) and returns it. notebook_id defaults to
                a new UUID; cells are cell objects with ``id`` (optional), ``type``, ``code``,
                ``status``, ``stdout``, ``outputs``, ``error``, ``reads``, ``writes``.
                AlreadyExists if a live notebook has that id."""
                return unwrap("notebook")(await self._request("notebook.create", params(
                        user_id=self._uid(user_id), notebook_id=opt(notebook_id), name=name,
                        db_conn_string=db_conn_string, ttl=ttl, cells=opt(cells))))

        async def update(self, notebook_id: str, *, user_id: Optional[str] = None,
                         expected_revision: Optional[int] = None,
                         name: Union[str, None, Unset] = UNSET, db_conn_string: Union[str, None, Unset] = UNSET,
                         ttl: Union[int, None, Unset] = UNSET, cells: Optional[List[JsonObject]] = None) -> JsonObject:
                """Changes a notebook's fields (``notebook.update``; None clears a field) and returns
                its summary. cells, on a daemon that accepts it, replaces all the cells at once.
                RevisionConflict if expected_revision is given and not the notebook's revision."""
                return unwrap("notebook")(await self._request("notebook.update", params(
                        user_id=self._uid(user_id), notebook_id=notebook_id, expected_revision=opt(expected_revision),
                        name=name, db_conn_string=db_conn_string, ttl=ttl, cells=opt(cells))))

        async def delete(self, notebook_id: str, *, user_id: Optional[str] = None,
                         expected_revision: Optional[int] = None) -> JsonObject:
                """Deletes a notebook (``notebook.delete``): ``{"notebook_id", "revision"}``."""
                return await self._request("notebook.delete", params(
                        user_id=self._uid(user_id), notebook_id=notebook_id, expected_revision=opt(expected_revision)))

        # -- cells -----------------------------------------------------------------------------

        async def create_cell(self, notebook_id: str, *, user_id: Optional[str] = None,
                              expected_revision: Optional[int] = None, cell_id: Optional[str] = None,
                              position: Optional[int] = None, after_cell_id: Union[str, None, Unset] = UNSET,
                              type: Optional[str] = None, code: Optional[str] = None, status: Optional[str] = None,
                              stdout: Optional[str] = None, outputs: Optional[List[JsonObject]] = None,
                              error: Union[str, None, Unset] = UNSET, reads: Optional[List[str]] = None,
                              writes: Optional[List[str]] = None) -> JsonObject:
                """Adds a cell (``cell.create``) at position, or after after_cell_id (None: at the
                front), else at the end. Returns ``{"notebook_id", "revision", "updated_at",
                "position", "cell"}``."""
                return await self._request("cell.create", params(
                        user_id=self._uid(user_id), notebook_id=notebook_id, expected_revision=opt(expected_revision),
                        cell_id=opt(cell_id), position=opt(position), after_cell_id=after_cell_id, type=opt(type),
                        code=opt(code), status=opt(status), stdout=opt(stdout), outputs=opt(outputs), error=error,
                        reads=opt(reads), writes=opt(writes)))

        async def update_cell(self, notebook_id: str, cell_id: str, *, user_id: Optional[str] = None,
                              expected_revision: Optional[int] = None, type: Optional[str] = None,
                              code: Optional[str] = None, status: Optional[str] = None, stdout: Optional[str] = None,
                              outputs: Optional[List[JsonObject]] = None, error: Union[str, None, Unset] = UNSET,
                              reads: Optional[List[str]] = None, writes: Optional[List[str]] = None) -> JsonObject:
                """Changes the fields given of one cell (``cell.update``; ``error=None`` clears
                the error). Returns ``{"notebook_id", "revision", "updated_at", "position",
                "cell"}``."""
                return await self._request("cell.update", params(
                        user_id=self._uid(user_id), notebook_id=notebook_id, cell_id=cell_id,
                        expected_revision=opt(expected_revision), type=opt(type), code=opt(code), status=opt(status),
                        stdout=opt(stdout), outputs=opt(outputs), error=error, reads=opt(reads), writes=opt(writes)))

        async def delete_cell(self, notebook_id: str, cell_id: str, *, user_id: Optional[str] = None,
                              expected_revision: Optional[int] = None) -> JsonObject:
                """Deletes one cell (``cell.delete``): ``{"notebook_id", "revision", "updated_at"}``."""
                return await self._request("cell.delete", params(
                        user_id=self._uid(user_id), notebook_id=notebook_id, cell_id=cell_id,
                        expected_revision=opt(expected_revision)))

        async def move_cell(self, notebook_id: str, cell_id: str, *, position: Optional[int] = None,
                            after_cell_id: Union[str, None, Unset] = UNSET, user_id: Optional[str] = None,
                            expected_revision: Optional[int] = None) -> JsonObject:
                """Moves a cell to position (its index afterwards) or after after_cell_id (None: to
                the front) (``cell.move``): ``{"notebook_id", "revision", "updated_at", "position"}``."""
                return await self._request("cell.move", params(
                        user_id=self._uid(user_id), notebook_id=notebook_id, cell_id=cell_id, position=opt(position),
                        after_cell_id=after_cell_id, expected_revision=opt(expected_revision)))

        async def reset_demo(self, *, user_id: Optional[str] = None,
                             expected_revision: Optional[int] = None) -> JsonObject:
                """Rewrites ``demo-USER`` to the current demo content (``demo.reset``) and returns it."""
                return unwrap("notebook")(await self._request("demo.reset", params(
                        user_id=self._uid(user_id), expected_revision=opt(expected_revision))))

        async def graph(self, notebook_id: str, *, user_id: Optional[str] = None) -> JsonObject:
                """The dependency graph of the cells (``notebook.graph``): ``{"notebook_id",
                "revision", "edges", "order", "cycles"}``."""
                return await self._request("notebook.graph", params(user_id=self._uid(user_id),
                                                                    notebook_id=notebook_id))

        # -- sync ------------------------------------------------------------------------------

        async def sync_pull(self) -> JsonObject:
                """Asks the sync engine to look for newer versions now (``sync.pull``);
                NoRemote on a local-only daemon."""
                return await self._request("sync.pull", None)

        async def sync_conflicts(self, notebook_id: Optional[str] = None, *,
                                 user_id: Optional[str] = None) -> List[JsonObject]:
                """The conflicts sync left to resolve (``sync.conflicts``), of one notebook or all."""
                return unwrap("conflicts")(await self._request("sync.conflicts", params(
                        user_id=self._uid(user_id), notebook_id=opt(notebook_id))))

        async def sync_resolve(self, notebook_id: str, keep: str, *, cell_id: Optional[str] = None,
                               field: Optional[str] = None, user_id: Optional[str] = None,
                               expected_revision: Optional[int] = None) -> JsonObject:
                """Resolves the conflict of cell_id or field, or all of the notebook's, keeping
                ``"local"``, ``"server"`` or ``"both"`` (``sync.resolve``)."""
                return await self._request("sync.resolve", params(
                        user_id=self._uid(user_id), notebook_id=notebook_id, cell_id=opt(cell_id), field=opt(field),
                        keep=keep, expected_revision=opt(expected_revision)))

        # -- the daemon ------------------------------------------------------------------------

        async def status(self) -> JsonObject:
                """``daemon.status``: version, uptime, sync state, who this peer is."""
                return await self._request("daemon.status", None)

        # Methods of newer daemons: MethodNotFound from a daemon that does not have them.

        async def history(self, notebook_id: str, *, user_id: Optional[str] = None,
                          limit: Optional[int] = None, before: Optional[int] = None) -> Any:
                """``notebook.history``: the revisions of the notebook that can be restored, newest
                first (``{"notebook_id", "revision", "revisions"}``, as the daemon sends it; needs a
                daemon that has it); ``before``: only the revisions below it."""
                return await self._request("notebook.history", params(
                        user_id=self._uid(user_id), notebook_id=notebook_id, limit=opt(limit),
                        before=opt(before)))

        async def restore(self, notebook_id: str, revision: int, expected_revision: Optional[int] = None, *,
                          user_id: Optional[str] = None) -> JsonObject:
                """``notebook.restore``: makes the content of an earlier revision (one history() lists)
                the newest revision, and returns the notebook (needs a daemon that has it)."""
                return unwrap("notebook")(await self._request("notebook.restore", params(
                        user_id=self._uid(user_id), notebook_id=notebook_id, revision=revision,
                        expected_revision=opt(expected_revision))))

        async def metrics(self) -> Any:
                """``daemon.metrics`` (needs a daemon that has it)."""
                return await self._request("daemon.metrics", None)

        # -- watches ---------------------------------------------------------------------------

        def watch(self, notebook_id: Optional[str] = None, *, user_id: Optional[str] = None) -> "AsyncWatch":
                """A subscription to changes of one notebook, or of all the user's notebooks when
                notebook_id is None (``notebook.watch``), as an async iterator of NotebookChanged
                and ChangesLost events. Subscribe with ``async with client.watch(...) as changes:``
                (unsubscribes at the end) or ``changes = await client.watch(...)`` (then
                ``await changes.close()``); ``async for ev in client.watch(...)`` subscribes on its
                first step. Changes made after the subscription's reply are all told, in order."""
                return AsyncWatch(self, notebook_id, user_id)

        async def unwatch(self, notebook_id: Optional[str] = None, *, user_id: Optional[str] = None) -> JsonObject:
                """``notebook.unwatch`` as it is: ends the daemon's subscription for every watch of
                this connection on that notebook (AsyncWatch.close() does this for one watch)."""
                return await self._request("notebook.unwatch", params(user_id=self._uid(user_id),
                                                                      notebook_id=opt(notebook_id)))


class AsyncWatch:
        """A subscription made by AsyncClient.watch(); see there. Iterating waits for the next
        event; ``await get(timeout)`` returns None when none comes in time. A ChangesLost event
        means some changes were not told (read again what you watch); the watch goes on. When
        the connection is lost, iteration raises notebookd.ConnectionError; when the watch or
        its client is closed, it ends."""

        def __init__(self, client: AsyncClient, notebook_id: Optional[str], user_id: Optional[str]) -> None:
                self._client = client
                self.notebook_id = notebook_id
                self._user_id = user_id
                self._key: Optional[WatchKey] = None
                self._events: Deque[WatchEvent] = collections.deque()
                self._wakeup = asyncio.Event()
                self._subscribing: Optional["asyncio.Task[AsyncWatch]"] = None
                self._closed = False
                self._error: Optional[ConnectionError] = None

        @property
        def user_id(self) -> Optional[str]:
                """The user whose notebooks are watched (as the daemon resolved it, once
                subscribed)."""
                return self._key[0] if self._key else self._user_id

        async def subscribe(self) -> "AsyncWatch":
                """Sends ``notebook.watch`` (once; later calls wait for the first); returns self."""
                if self._closed:
                        raise ValueError("the watch is closed")
                if self._subscribing is None:
                        self._subscribing = asyncio.ensure_future(self._subscribe())
                return await asyncio.shield(self._subscribing)

        async def _subscribe(self) -> "AsyncWatch":
                c = self._client

                def subscribed(result: Any) -> None:
                        self._key = (result.get("user_id") if isinstance(result, dict) else None, self.notebook_id)
                        c._router.add(self._key, self._deliver)
                        c._watches.append(self)

                await c._request("notebook.watch", params(user_id=c._uid(self._user_id),
                                                          notebook_id=opt(self.notebook_id)), subscribed)
                return self

        def __await__(self) -> Generator[Any, None, "AsyncWatch"]:
                return self.subscribe().__await__()

        async def __aenter__(self) -> "AsyncWatch":
                return await self.subscribe()

        async def __aexit__(self, *exc: Any) -> None:
                await self.close()

        def _deliver(self, ev: WatchEvent) -> None:
                if len(self._events) >= MAX_QUEUED_EVENTS:
                        self._events.clear()
                        ev = ChangesLost()
                self._events.append(ev)
                self._wakeup.set()

        def _end(self, exc: Optional[ConnectionError]) -> None:
                self._closed = True
                self._error = exc
                self._wakeup.set()

        def __aiter__(self) -> "AsyncWatch":
                return self

        async def __anext__(self) -> WatchEvent:
                if self._key is None and not self._closed:
                        await self.subscribe()
                while not self._events:
                        if self._error is not None:
                                raise self._error
                        if self._closed:
                                raise StopAsyncIteration
                        self._wakeup.clear()
                        await self._wakeup.wait()
                return self._events.popleft()

        async def get(self, timeout: Optional[float] = None) -> Optional[WatchEvent]:
                """The next event, waiting at most timeout seconds (None: forever); None if none
                came, or if the watch ended."""
                if self._events:
                        return self._events.popleft()
                try:
                        if timeout is None:
                                return await self.__anext__()
                        return await asyncio.wait_for(self.__anext__(), timeout)
                except (asyncio.TimeoutError, StopAsyncIteration):
                        return None

        async def close(self) -> None:
                """Unsubscribes (when no other watch of this client watches the same thing), and
                ends iteration. A lost connection is not an error here."""
                if self._closed:
                        return
                self._end(None)
                c = self._client
                if self in c._watches:
                        c._watches.remove(self)
                if self._key is not None and c._router.remove(self._key, self._deliver) and not c.closed:
                        try:
                                await c._request("notebook.unwatch", params(user_id=opt(self._key[0]),
                                                                            notebook_id=opt(self.notebook_id)))
                        except ConnectionError:
                                pass

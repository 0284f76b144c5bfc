# SPDX-License-Identifier: MIT
"""What the blocking and the asyncio client share: the socket path rule, request encoding and
reply decoding, the UNSET marker, watch events and the routing of notifications to watches."""

from __future__ import annotations

import enum
import json
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from ._errors import ProtocolError

#: The longest reply line accepted by default. A reply can carry a whole notebook (1000 cells,
#: each up to about 10 MiB in theory), so the limit is generous; it only guards against a runaway
#: peer. The same as libnbclient's NB_CLIENT_MAX_REPLY_BYTES.
MAX_REPLY_BYTES = 256 * 1024 * 1024

#: Notifications a watch keeps for a reader that does not keep up; past this many the oldest are
#: dropped and the watch yields ChangesLost (as the daemon does past 1 MiB unsent).
MAX_QUEUED_EVENTS = 4096


class _Unset(enum.Enum):
        UNSET = "UNSET"

        def __repr__(self) -> str:
                return "UNSET"

        def __bool__(self) -> bool:
                return False


#: Marks a parameter that is not sent at all. Where ``None`` means something to the daemon
#: (``name=None`` clears the name, ``after_cell_id=None`` inserts at the front), the default is
#: UNSET; elsewhere None and UNSET both mean "not sent".
UNSET = _Unset.UNSET
Unset = _Unset

JsonObject = Dict[str, Any]


def default_socket_path() -> str:
        """The daemon's socket when none is given, as libnbclient's nb_default_socket_path():
        ``$NOTEBOOKD_SOCKET`` if set and not empty; for root ``/run/notebookd/notebookd.sock``;
        otherwise ``$XDG_RUNTIME_DIR/notebookd/notebookd.sock`` (an absolute XDG_RUNTIME_DIR only),
        or ``/run/user/UID/notebookd/notebookd.sock``."""
        env = os.environ.get("NOTEBOOKD_SOCKET")
        if env:
                return env
        uid = os.geteuid()
        if uid == 0:
                return "/run/notebookd/notebookd.sock"
        xdg = os.environ.get("XDG_RUNTIME_DIR")
        if xdg and xdg.startswith("/"):
                return os.path.join(xdg, "notebookd", "notebookd.sock")
        return f"/run/user/{uid}/notebookd/notebookd.sock"


def params(**kw: Any) -> JsonObject:
        """The params object of a request: every argument that is not UNSET."""
        return {k: v for k, v in kw.items() if v is not UNSET}


def opt(value: Any) -> Any:
        """For a parameter where null means nothing to the daemon: None is not sent."""
        return UNSET if value is None else value


def encode_request(req_id: int, method: str, p: Optional[JsonObject]) -> bytes:
        """One request line. Raises TypeError for a value JSON cannot hold (a set, bytes, an
        object) and ValueError for NaN or an infinity (not JSON), before anything is sent."""
        req: JsonObject = {"jsonrpc": "2.0", "id": req_id, "method": method}
        if p:
                req["params"] = p
        return json.dumps(req, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode() + b"\n"


def decode_line(line: bytes) -> JsonObject:
        """A line from the daemon as a JSON object; ProtocolError if it is not one."""
        try:
                msg = json.loads(line)
        except (ValueError, UnicodeDecodeError) as e:
                raise ProtocolError(f"the daemon sent a line that is not JSON: {e}") from None
        if not isinstance(msg, dict) or msg.get("jsonrpc") != "2.0":
                raise ProtocolError(f"the daemon sent something that is not JSON-RPC 2.0: {_short(line)}")
        return msg


def is_notification(msg: JsonObject) -> bool:
        return "id" not in msg and isinstance(msg.get("method"), str)


def check_reply(msg: JsonObject) -> None:
        if ("result" in msg) == ("error" in msg):
                raise ProtocolError(f"a reply needs exactly one of result and error: {_short(msg)}")


def _short(v: Any, limit: int = 200) -> str:
        s = v.decode(errors="replace") if isinstance(v, (bytes, bytearray)) else repr(v)
        return s if len(s) <= limit else s[:limit] + "..."


@dataclass(frozen=True)
class NotebookChanged:
        """A ``notebook.changed`` notification: a change to a watched notebook is on disk.

        revision is the revision that change made (None for a deleted notebook whose tombstone is
        gone too); origin is ``"local"`` (made through this daemon) or ``"remote"`` (pulled from
        the DynamoDB table)."""
        user_id: str
        notebook_id: str
        revision: Optional[int]
        deleted: bool
        origin: str

        @classmethod
        def from_params(cls, p: JsonObject) -> "NotebookChanged":
                return cls(user_id=p.get("user_id"), notebook_id=p.get("notebook_id"), revision=p.get("revision"),
                           deleted=bool(p.get("deleted")), origin=p.get("origin") or "local")


@dataclass(frozen=True)
class ChangesLost:
        """Some changes were not told: the daemon left notifications out for a connection that did
        not read them fast enough (``notebook.changes_lost``), or this watch's own queue overflowed.
        Read again whatever is watched; the watch goes on."""


WatchEvent = Union[NotebookChanged, ChangesLost]
WatchKey = Tuple[str, Optional[str]]


class WatchRouter:
        """Hands each notification to the watches it concerns. A watch registers a deliver
        callback under (user_id, notebook_id or None for all the user's notebooks) once the
        daemon's reply to its notebook.watch is read, before any later line is looked at: the
        daemon sends no notification for a watch before that reply."""

        def __init__(self) -> None:
                self._watches: Dict[WatchKey, List[Callable[[WatchEvent], None]]] = {}

        def add(self, key: WatchKey, deliver: Callable[[WatchEvent], None]) -> None:
                self._watches.setdefault(key, []).append(deliver)

        def remove(self, key: WatchKey, deliver: Callable[[WatchEvent], None]) -> bool:
                """Forgets one watch; True when it was the last one of its key (the daemon's
                subscription, shared by all of them, may end)."""
                lst = self._watches.get(key)
                if lst and deliver in lst:
                        lst.remove(deliver)
                if lst is not None and not lst:
                        del self._watches[key]
                        return True
                return False

        def has(self, key: WatchKey) -> bool:
                return key in self._watches

        def dispatch(self, msg: JsonObject) -> None:
                method = msg.get("method")
                p = msg.get("params")
                if method == "notebook.changed" and isinstance(p, dict):
                        ev = NotebookChanged.from_params(p)
                        seen = set()
                        for key in ((ev.user_id, ev.notebook_id), (ev.user_id, None)):
                                for deliver in list(self._watches.get(key, ())):
                                        if id(deliver) not in seen:
                                                seen.add(id(deliver))
                                                deliver(ev)
                elif method == "notebook.changes_lost":
                        lost = ChangesLost()
                        for lst in list(self._watches.values()):
                                for deliver in list(lst):
                                        deliver(lost)
                # Other notifications (from a newer daemon) are not for watches: ignored.


def unwrap(key: str) -> Callable[[Any], Any]:
        def get(result: Any) -> Any:
                if not isinstance(result, dict) or key not in result:
                        raise ProtocolError(f"a result without {key!r}: {_short(result)}")
                return result[key]
        return get

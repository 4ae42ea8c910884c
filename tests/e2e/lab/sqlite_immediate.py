"""Let concurrent writers queue on SQLite's busy timeout (e2e lab only).

oslo.db turns off the sqlite3 module's own transaction handling and emits a
plain (deferred) ``BEGIN`` itself. A deferred transaction that has read and
then wants to write must upgrade its lock; when another connection holds
the write lock, SQLite fails that upgrade at once with "database is locked"
instead of waiting for the busy timeout, since waiting could deadlock. Heat's
engine runs stack operations in parallel threads and hits exactly that (for
example on parallel stack deletes). Starting every transaction with
``BEGIN IMMEDIATE`` takes the write lock up front, so a second writer waits
on the busy timeout instead of failing.
"""

from typing import Any


def install() -> None:
    """Rewrite ``BEGIN`` to ``BEGIN IMMEDIATE`` on every SQLite engine.

    Call before the service creates its database engine; listening on the
    Engine class covers every engine created afterwards.
    """
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if event.contains(Engine, "before_cursor_execute", _begin_immediate):
        return
    event.listen(Engine, "before_cursor_execute", _begin_immediate, retval=True)


def _begin_immediate(conn: Any, cursor: Any, statement: str, parameters: Any,
                     context: Any, executemany: bool) -> tuple[str, Any]:
    if statement == "BEGIN" and conn.dialect.name == "sqlite":
        statement = "BEGIN IMMEDIATE"
    return statement, parameters

"""Stop SQLite from handing out the ids of deleted rows again (e2e lab only).

A table whose key is a plain ``INTEGER PRIMARY KEY`` gives a new row
max(id) + 1, so deleting the newest row frees its id for the next insert.
MySQL and PostgreSQL never re-use ids, and Heat relies on that: during a
stack update it deletes a resource's attribute data row by an id it read
earlier, and when SQLite has meanwhile given that id to the new properties
of another resource, those are deleted instead. The stack then cannot be
shown (404 "ResourcePropertiesData ... not found") and the update never
completes. ``AUTOINCREMENT`` keys never re-use ids; SQLite cannot add it to
an existing table, so each such table is rebuilt right after db_sync.

usage: sqlite_autoincrement.py DATABASE
"""

import re
import sqlite3
import sys

PRIMARY_KEY_CLAUSE = re.compile(r",\s*PRIMARY KEY \(id\)")
ID_COLUMN = re.compile(r"\bid INTEGER NOT NULL\b")


def integer_id_tables(db: sqlite3.Connection) -> list[tuple[str, str]]:
    """(name, CREATE statement) of the tables keyed by a plain integer ``id``."""
    tables = []
    for name, sql in db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'"
                                " AND name NOT LIKE 'sqlite_%'").fetchall():
        key = [col for col in db.execute(f'PRAGMA table_info("{name}")') if col[5]]
        if (len(key) == 1 and key[0][1] == "id" and key[0][2].upper() == "INTEGER"
                and "AUTOINCREMENT" not in sql.upper()):
            tables.append((name, sql))
    return tables


def rebuild(db: sqlite3.Connection, name: str, sql: str) -> None:
    """Re-create one table with an AUTOINCREMENT id, keeping rows and indexes."""
    new_sql, keys = PRIMARY_KEY_CLAUSE.subn("", sql)
    new_sql, ids = ID_COLUMN.subn("id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT", new_sql)
    if keys != 1 or ids != 1:
        raise SystemExit(f"sqlite_autoincrement: unexpected schema of {name}:\n{sql}")
    indexes = [row[0] for row in db.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL",
        (name,))]
    temporary = f"{name}__autoincrement"
    db.execute(new_sql.replace(f"CREATE TABLE {name} ", f'CREATE TABLE "{temporary}" ', 1))
    db.execute(f'INSERT INTO "{temporary}" SELECT * FROM "{name}"')
    db.execute(f'DROP TABLE "{name}"')
    db.execute(f'ALTER TABLE "{temporary}" RENAME TO "{name}"')
    for index in indexes:
        db.execute(index)


def main() -> None:
    """Rebuild every integer-keyed table of the database in one transaction."""
    db = sqlite3.connect(sys.argv[1], isolation_level=None)
    db.execute("PRAGMA foreign_keys = OFF")
    db.execute("BEGIN IMMEDIATE")
    tables = integer_id_tables(db)
    for name, sql in tables:
        rebuild(db, name, sql)
    db.execute("COMMIT")
    print(f"sqlite_autoincrement: {len(tables)} tables of {sys.argv[1]} never re-use ids")


if __name__ == "__main__":
    main()

"""Create Zaqar's management tables in a new SQLite file: sz.sh's replacement for
``zaqar-sql-db-manage upgrade head``, whose migrations include a MySQL-only ALTER
that SQLite rejects. usage: zaqar_schema.py PATH (run with the zaqar venv's Python)."""

import sys

import sqlalchemy
from zaqar.storage.sqlalchemy import tables

tables.metadata.create_all(sqlalchemy.create_engine(f"sqlite:///{sys.argv[1]}"))

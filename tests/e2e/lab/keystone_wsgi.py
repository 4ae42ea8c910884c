"""Keystone's WSGI application for gunicorn (e2e lab).

start.sh runs ``gunicorn keystone_wsgi:application`` with this directory on
the Python path and OS_KEYSTONE_CONFIG_FILES naming the lab's keystone.conf.
"""

import sys

import sqlite_immediate

# Keystone hands sys.argv to oslo.config when it initialises, which rejects
# gunicorn's own command-line options and exits the worker.
sys.argv = sys.argv[:1]
sqlite_immediate.install()

from keystone.wsgi.api import application  # noqa: F401

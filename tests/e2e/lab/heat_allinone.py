"""heat-api, heat-api-cfn and heat-engine in one process (e2e lab only).

openstack-heat 27 has no ``heat-all`` command and serves its APIs only as
WSGI applications. oslo.messaging's in-memory ``fake://`` transport links
callers and servers inside one process only, so this launcher starts the
engine in-process (no forked workers) and then serves both APIs from
threads. The API ports are opened only after the engine's RPC servers
listen: once a port answers, the whole of Heat is ready.

Usage: heat_allinone.py --config-file heat.conf
Listens on $LAB_HOST:$HEAT_API_PORT (heat-api) and $LAB_HOST:$HEAT_CFN_PORT
(heat-api-cfn). SIGTERM stops it within a few seconds.
"""

import logging as std_logging
import os
import signal
import socketserver
import sys
import threading
from collections.abc import Callable
from typing import Any
from wsgiref import simple_server

from oslo_service import backend

# the engine's thread groups must be real threads, as heat-engine sets up
backend.init_backend(backend.BackendType.THREADING)

import sqlite_immediate
from heat import version
from heat.common import (
    config,
    messaging,
)
from heat.engine import template
from heat.rpc import api as rpc_api
from oslo_config import cfg
from oslo_log import log as logging

LOG = logging.getLogger("heat-allinone")
STOP_GRACE_SECONDS = 5


class _ThreadingServer(socketserver.ThreadingMixIn, simple_server.WSGIServer):
    daemon_threads = True


class _Handler(simple_server.WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        # one access line per request into heat.log rather than stderr
        LOG.debug("%s %s", self.address_string(), format % args)


def _serve(app: Callable, host: str, port: int, name: str) -> simple_server.WSGIServer:
    server = simple_server.make_server(host, port, app, server_class=_ThreadingServer,
                                       handler_class=_Handler)
    threading.Thread(target=server.serve_forever, name=name, daemon=True).start()
    LOG.info("%s listening on http://%s:%d", name, host, port)
    return server


def main() -> None:
    """Start the engine, then both APIs; run until SIGTERM or SIGINT."""
    sqlite_immediate.install()
    conf = cfg.CONF
    logging.register_options(conf)
    conf(sys.argv[1:], project="heat", prog="heat-allinone",
         version=version.version_info.version_string())
    logging.setup(conf, "heat-allinone")
    config.set_config_defaults()
    messaging.setup()
    config.startup_sanity_check()
    if not template._get_template_extension_manager().names():
        sys.exit("heat-allinone: no template format plugins registered")

    from heat.engine import service as engine_service

    engine = engine_service.EngineService(conf.host, rpc_api.ENGINE_TOPIC)
    engine.start()

    host = os.environ.get("LAB_HOST", "127.0.0.1")
    servers = [
        _serve(config.load_paste_app("heat-api"), host,
               int(os.environ.get("HEAT_API_PORT", "8004")), "heat-api"),
        _serve(config.load_paste_app("heat-api-cfn"), host,
               int(os.environ.get("HEAT_CFN_PORT", "8000")), "heat-api-cfn"),
    ]

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    LOG.info("stopping")
    for server in servers:
        server.shutdown()
    # The engine's graceful stop waits for stack threads, and a deployment
    # waiting for its signal never ends by itself: bound the wait.
    stopper = threading.Thread(target=engine.stop, daemon=True)
    stopper.start()
    stopper.join(STOP_GRACE_SECONDS)
    std_logging.shutdown()
    # leftover engine threads are not daemons and would keep us alive
    os._exit(0)


if __name__ == "__main__":
    main()

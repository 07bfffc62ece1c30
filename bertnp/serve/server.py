"""Running the app under uvicorn, with the shutdown a service manager expects.

SIGTERM (or Ctrl-C): uvicorn stops accepting connections, answers every request in flight, then the app's
lifespan stops the batcher, and `run` returns 0 (uvicorn alone would re-raise the signal after its graceful
shutdown, so the process would die of it). Ctrl-C then raises KeyboardInterrupt, as elsewhere in the CLI.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import sys

import uvicorn

from .app import create_app
from .limits import Options

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
# How long an idle keep-alive connection stays open. Longer than clients keep idle connections in their pools
# (httpx and the openai client: 5 s), so that the client closes first. With uvicorn's default of 5 s, a client
# could send its next request just as the server closed the connection: the request was lost and the client
# got a connection reset. nginx's default, for the same reason behind load balancers.
KEEP_ALIVE_S = 75


class Server(uvicorn.Server):
    interrupted = False  # Ctrl-C, not SIGTERM

    def handle_exit(self, sig, frame):
        self.interrupted = self.interrupted or sig == signal.SIGINT
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self):
        """uvicorn's handlers for SIGINT and SIGTERM (graceful shutdown), without its re-raise afterwards."""
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def run(model, options: Options, host: str = "127.0.0.1", port: int = 8080, log_level: str = "info") -> int:
    """Serve until SIGTERM or Ctrl-C. The socket is bound (port 0: any free port) and listening before the
    app starts, and its address printed to stderr: clients that connect early wait in the backlog."""
    app = create_app(model, options)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # asyncio sets TCP_NODELAY on TCP only
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.listen(2048)
    bound = sock.getsockname()[1]
    served = app.state.served
    where = f"[{host}]" if family == socket.AF_INET6 else host
    print(f"bertnp serve: {served.name} ({served.kind}, {type(served.model.backend).__name__}) on "
          f"http://{where}:{bound}", file=sys.stderr, flush=True)
    config = uvicorn.Config(app, log_level=log_level, access_log=False, timeout_graceful_shutdown=None,
                            backlog=2048, server_header=False, timeout_keep_alive=KEEP_ALIVE_S)
    server = Server(config)
    server.run(sockets=[sock])
    if server.interrupted:
        raise KeyboardInterrupt
    return 0

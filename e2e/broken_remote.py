"""A broken remote for fault tests: a loopback listener that answers like a tenant apiserver gone bad.

Why: "a tenant apiserver that returns garbage" (issue 13) cannot be made from a real kube-apiserver;
it is fault injection of a broken remote -- what a misbehaving proxy or a half-written response
looks like on the wire -- not an imitation of a component under test.  The syncer is pointed at it
by rewriting a tenant's kubeconfig Secret (:func:`pointed_at`), as a broken edit would.  Shared by
e2e/test_faults.py and bench/faults.py.
"""

from __future__ import annotations

import base64
import http.server
import threading

import yaml


class GarbageApiserver:
    """A loopback HTTP listener that answers like a broken tenant apiserver: ``200`` with a body that is
    not JSON, JSON cut short, or a body that never ends, in turn, for every API request.  Its health
    endpoints (``/readyz``, ``/livez``, ``/healthz``) answer ``ok``: a broken remote that still looks
    alive (a misbehaving proxy in front of the apiserver), so only the syncer can tell.  Fault
    injection of a broken remote, not an imitation of a component under test."""

    MODES = ("not-json", "truncated", "endless")

    def __init__(self) -> None:
        outer = self
        self.seen: dict[str, int] = dict.fromkeys(self.MODES, 0)
        self.stopping = threading.Event()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path.startswith(("/readyz", "/livez", "/healthz")):
                    self._send(b"ok", "text/plain")
                    return
                mode = outer.MODES[sum(outer.seen.values()) % len(outer.MODES)]
                outer.seen[mode] += 1
                if mode == "not-json":
                    self._send(b"<html><body>502 Bad Gateway, but said as 200</body></html>", "application/json")
                elif mode == "truncated":
                    self._send(b'{"kind":"List","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[{"me',
                               "application/json")
                else:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    try:
                        self.wfile.write(b"1\r\n{\r\n")
                        while not outer.stopping.wait(0.2):
                            self.wfile.write(b"1\r\n \r\n")
                            self.wfile.flush()
                    except OSError:
                        pass  # the client gave up
                    self.close_connection = True

            do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

            def _send(self, body: bytes, ctype: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> GarbageApiserver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


def pointed_at(kubeconfig_b64: str, server: str) -> str:
    """The kubeconfig (base64, as in the Secret) with every cluster's server replaced by ``server``."""
    doc = yaml.safe_load(base64.b64decode(kubeconfig_b64))
    for cluster in doc["clusters"]:
        cluster["cluster"]["server"] = server
    return base64.b64encode(yaml.safe_dump(doc).encode()).decode()

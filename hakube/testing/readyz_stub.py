"""A stand-in for a master's HTTP endpoints, for testing keepalived without masters.

``GET /readyz`` answers 200, or 503 while the file given by ``--unready-file`` exists, so a test
flips readiness by creating or deleting a file: no network access to the host is needed.
``GET /`` answers with ``--name``, which tells a client behind the VIP which host it reached.

Standard library only, so it runs as ``python3 -I readyz_stub.py`` inside any namespace whatever
is installed where.
"""

from __future__ import annotations

import argparse
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", default="0.0.0.0:8080", help="HOST:PORT")
    ap.add_argument("--name", required=True, help="what GET / answers")
    ap.add_argument("--unready-file", required=True, help="/readyz is 503 while this exists")
    args = ap.parse_args(argv)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path == "/readyz":
                ready = not os.path.exists(args.unready_file)
                code, body = (200, b"ok\n") if ready else (503, b"not ready\n")
            elif self.path == "/":
                code, body = 200, f"{args.name}\n".encode()
            else:
                code, body = 404, b"not found\n"
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    host, _, port = args.listen.rpartition(":")
    server = ThreadingHTTPServer((host, int(port)), Handler)
    server.daemon_threads = True
    print(f"readyz stub {args.name} listening on {args.listen}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

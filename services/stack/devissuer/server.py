"""The development issuer's HTTP side: OIDC discovery and the JWKS, nothing else.

Standard library only (it starts in a fraction of a second and holds no private key in memory:
it serves the ``jwks.json`` written beside the key, re-read when the file changes, so a new key
is published without a restart).
"""

from __future__ import annotations

import argparse
import logging
import signal
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

from services.stack.devissuer.keys import ALGORITHM, JWKS, published

log = logging.getLogger("opsledger.devissuer")


def discovery(issuer: str) -> dict[str, Any]:
    """The subset of OpenID Connect Discovery a resource server reads."""
    return {
        "issuer": issuer,
        "jwks_uri": f"{issuer}/jwks.json",
        "id_token_signing_alg_values_supported": [ALGORITHM],
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
    }


def make_server(host: str, port: int, directory: Path, issuer: str) -> ThreadingHTTPServer:
    meta = orjson.dumps(discovery(issuer))

    def jwks() -> bytes:
        # Re-read per request (two small files): a rotation is published at once, and a retired
        # key disappears when its overlap ends.
        return orjson.dumps(published(directory))

    class Handler(BaseHTTPRequestHandler):
        server_version = "opsledger-devissuer"

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            path = self.path.split("?", 1)[0]
            if path == "/.well-known/openid-configuration":
                self._send(200, meta)
            elif path == "/jwks.json":
                self._send(200, jwks())
            else:
                self._send(404, b'{"error": "not found"}')

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "max-age=60")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
            log.debug(format, *args)

    return ThreadingHTTPServer((host, port), Handler)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True, help="holds jwks.json")
    parser.add_argument("--issuer", required=True, help="the `iss` its tokens carry")
    parser.add_argument("--tls-cert", type=Path, help="serve https with this certificate chain")
    parser.add_argument("--tls-key", type=Path, help="the certificate's private key")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    server = make_server(args.host, args.port, args.dir, args.issuer)
    if args.tls_cert is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # unwinds serve_forever
    log.info("development issuer %s serving %s", args.issuer, args.dir / JWKS)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()

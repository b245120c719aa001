"""The containers' health probe: GET a path of this container's server, exit 0 on a 2xx, else 1.

`healthcheck.py api` asks the API layer's /healthz on 127.0.0.1:LLMP_PORT. `healthcheck.py worker` asks a
worker's /internal/health with the worker secret (the worker API is internal), at the address the worker
binds: PROBE_HOST (in Kubernetes, the pod IP the worker binds and advertises), else this
container's own address. Standard library only: it runs in both images, and Docker's HEALTHCHECK and a
Kubernetes exec probe call it alike. It prints nothing: a probe's output lands in events and logs.
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.error
import urllib.request

WORKER_PORT = 8001  # what both images and the Helm chart start `llmp worker --port` with


def _target(kind: str) -> tuple[str, dict[str, str]]:
    if kind == "api":
        return f"http://127.0.0.1:{os.environ.get('LLMP_PORT', '8000')}/healthz", {}
    host = os.environ.get("PROBE_HOST") or socket.gethostbyname(socket.gethostname())
    port = os.environ.get("PROBE_PORT", str(WORKER_PORT))
    secret = os.environ.get("LLMP_WORKER_SECRET", "")
    return f"http://{host}:{port}/internal/health", {"Authorization": f"Bearer {secret}"}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in ("api", "worker"):
        return 2
    url, headers = _target(argv[1])
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as response:  # noqa: S310 (our own http URL)
            return 0 if 200 <= response.status < 300 else 1
    except (urllib.error.URLError, OSError):
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""Shared fixtures: the real FSDD archive, its extracted recordings, a local HTTP server."""
from __future__ import annotations

import functools
import http.server
import os
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import helpers  # noqa: E402

SHARED_ARCHIVE = ROOT.parent / "shared" / "fsdd" / f"free-spoken-digit-dataset-{helpers.FSDD_VERSION}.tar.gz"


@pytest.fixture(scope="session")
def fsdd_archive() -> Path:
    """Path to the real FSDD archive (FSDD_SOURCE or ../shared/fsdd/); skipped outside CI if absent."""
    for candidate in (os.environ.get("FSDD_SOURCE"), SHARED_ARCHIVE):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    message = f"no FSDD archive: set FSDD_SOURCE to a local copy (looked for {SHARED_ARCHIVE})"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def recordings(fsdd_archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 3,000 real recordings, extracted once per test session."""
    return helpers.download_fsdd(tmp_path_factory.mktemp("fsdd"), source=fsdd_archive)


@pytest.fixture
def serve_directory():
    """Serve a folder on 127.0.0.1 and return its base URL; stops after the test."""
    servers = []

    def serve(folder: Path) -> str:
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
        handler.log_message = lambda *args: None
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()

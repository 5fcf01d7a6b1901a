"""Fixtures shared by the label-store tests: every store test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from postgres_server import SKIP_REASON, find_bin, start

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def pg_server():
    """A throw-away PostgreSQL server for the whole run; skipped only without its binaries."""
    if find_bin() is None:
        pytest.skip(SKIP_REASON)
    server = start()
    yield server
    server.stop()


@pytest.fixture(params=BACKENDS)
def fresh_url(request, tmp_path):
    """A function giving a new, empty label database on this test's backend, as a URL."""
    if request.param == "postgresql":
        server, made = request.getfixturevalue("pg_server"), []

        def new() -> str:
            made.append(server.new_database())
            return made[-1]

        yield new
        for url in made:  # keep the throw-away server small
            server.drop_database(url)
        return
    counter = iter(range(1_000_000))
    yield lambda: f"sqlite:///{tmp_path / f'labels{next(counter)}.db'}"


@pytest.fixture
def label_url(fresh_url):
    """A fresh, empty label database on each backend, as a URL for ``LabelStore``."""
    return fresh_url()


@pytest.fixture
def workspace_labels(label_url, monkeypatch):
    """Where a Workspace's LabelStore lives on each backend: its own file on SQLite (one user),
    the server named by ``$WORKBENCH_LABELS_URL`` on PostgreSQL (a team); returns the URL."""
    from workbench.labels._db import URL_VARIABLE

    monkeypatch.delenv(URL_VARIABLE, raising=False)
    if label_url.startswith("postgresql"):
        monkeypatch.setenv(URL_VARIABLE, label_url)
    return label_url

"""The package itself: what it exports, its exception hierarchy, and the
client's checks that need no server."""

from __future__ import annotations

import pathlib
import re

import pytest

import stroom

PACKAGE = pathlib.Path(stroom.__file__).parent


def test_every_name_in_all_is_exported_and_typed():
    stub = (PACKAGE / "__init__.pyi").read_text()
    for name in stroom.__all__:
        assert hasattr(stroom, name), name
        if name != "__version__":
            assert re.search(rf"^(class|def) {re.escape(name)}\b", stub, re.MULTILINE), f"{name} has no stub"
    assert (PACKAGE / "py.typed").exists()


def test_version_is_the_crate_version():
    assert re.fullmatch(r"\d+\.\d+\.\d+([-.+].*)?", stroom.__version__)


def test_exceptions_form_one_hierarchy():
    for error in (stroom.StoreError, stroom.QueryError, stroom.ModelError, stroom.RouteError, stroom.ApiError):
        assert issubclass(error, stroom.StroomError)
    assert issubclass(stroom.IngestError, stroom.StoreError)
    assert issubclass(stroom.StroomError, Exception)
    error = stroom.ApiError(404, {"type": "about:blank", "title": "Not Found", "status": 404, "detail": "no route"})
    assert (error.status, str(error)) == (404, "404 Not Found: no route")


def test_the_client_refuses_what_it_cannot_send():
    with pytest.raises(ValueError, match="URL"):
        stroom.Client("127.0.0.1:8080", "token")
    with pytest.raises(ValueError, match="token"):
        stroom.Client("http://127.0.0.1:8080", "")
    client = stroom.Client("http://127.0.0.1:8080/", "token")
    assert client.url == "http://127.0.0.1:8080"
    assert "token" not in repr(client)
    with pytest.raises(ValueError, match="no date"):
        client.briefing("channel", date="2024-05-01")
    with pytest.raises(TypeError, match="list"):
        client.backtest("station:dover", models="naive")


def test_health_of_an_unreachable_server_is_false():
    # Port 9 (discard) on loopback: nothing listens there.
    assert stroom.Client("http://127.0.0.1:9", "token", timeout=2).health() is False

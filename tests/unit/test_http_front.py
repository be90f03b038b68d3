"""The front's configuration (one template for `scripts/run` and compose) and the HTTP servers' names."""

from __future__ import annotations

import subprocess

import pytest
from django.core.exceptions import ImproperlyConfigured

from core.http_servers import HTTP_SERVERS, server_named
from devstack.front import front_argv, nginx_binary


def test_the_rendered_front_configuration_is_valid_nginx(tmp_path):
    argv = front_argv(tmp_path / "front", "127.0.0.1:18000", "127.0.0.1:18001", "127.0.0.1:18002")
    checked = subprocess.run([*argv, "-t"], check=False, capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr
    config = (tmp_path / "front" / "nginx.conf").read_text()
    assert "server 127.0.0.1:18001;" in config and "server 127.0.0.1:18002;" in config
    assert "$http_upgrade" in config  # nginx's own variables survive the substitution


def test_the_fronts_access_log_never_records_a_query_string(tmp_path):
    front_argv(tmp_path / "front", "127.0.0.1:18000", "127.0.0.1:18001", "127.0.0.1:18002")
    config = (tmp_path / "front" / "nginx.conf").read_text()
    formats = [line for line in config.splitlines() if "log_format" in line or line.strip().startswith("'")]
    logged = " ".join(formats)
    assert "$uri" in logged
    assert not any(
        variable in logged
        for variable in ("$request ", '$request"', "$request_uri", "$args", "$query_string")
    )
    assert f"access_log {tmp_path / 'front' / 'access.log'} jobqueue_no_query;" in config


def test_the_front_is_an_nginx_on_the_machine():
    assert nginx_binary().endswith("/nginx")


def test_the_rest_api_must_name_a_wsgi_server_and_the_live_server_an_asgi_one():
    assert server_named("granian-wsgi", "wsgi") is HTTP_SERVERS["granian-wsgi"]
    with pytest.raises(ImproperlyConfigured, match="granian-wsgi"):
        server_named("uvicorn-asgi", "wsgi")
    with pytest.raises(ImproperlyConfigured, match="uvicorn-asgi"):
        server_named("no-such-server", "asgi")

"""The development stack's public front: nginx on the public port, routing the REST API to the WSGI
server and the WebSockets to the ASGI server, from the same template the compose file uses."""

from __future__ import annotations

import shutil
import string
from pathlib import Path

from django.conf import settings

TEMPLATE = settings.BASE_DIR / "docker" / "nginx" / "jobqueue.conf.template"
NGINX_SEARCH_PATH = "/usr/sbin:/usr/local/sbin:/usr/bin:/usr/local/bin"

# nginx's own files (pid, temporary bodies, logs) live in the stack's data folder, so it runs as any
# user and leaves nothing behind elsewhere.
_MAIN = """\
daemon off;
worker_processes 1;
pid {home}/nginx.pid;
error_log stderr warn;
events {{
    worker_connections 4096;
}}
http {{
    client_body_temp_path {home}/client_body;
    proxy_temp_path {home}/proxy;
    fastcgi_temp_path {home}/fastcgi;
    uwsgi_temp_path {home}/uwsgi;
    scgi_temp_path {home}/scgi;
{server}
}}
"""


class FrontUnavailable(RuntimeError):
    """nginx is not installed (scripts/run installs Debian's package)."""


def nginx_binary() -> str:
    found = shutil.which("nginx", path=NGINX_SEARCH_PATH)
    if found is None:
        raise FrontUnavailable("nginx is not installed; scripts/run installs Debian's nginx package")
    return found


def front_argv(home: Path, listen: str, api_upstream: str, live_upstream: str) -> list[str]:
    """Write the front's configuration under `home` and return the command that serves it."""
    home.mkdir(parents=True, exist_ok=True)
    # safe_substitute: nginx's own $variables stay as they are (the nginx image's envsubst does the same).
    server = string.Template(TEMPLATE.read_text()).safe_substitute(
        FRONT_LISTEN=listen,
        FRONT_MAX_BODY=settings.FRONT_MAX_BODY,
        FRONT_ACCESS_LOG=home / "access.log",
        API_UPSTREAM=api_upstream,
        LIVE_UPSTREAM=live_upstream,
    )
    if "${" in server:
        raise ValueError(f"{TEMPLATE} names a variable the front does not fill in")
    config = home / "nginx.conf"
    config.write_text(_MAIN.format(home=home, server=_indent(server)))
    return [nginx_binary(), "-p", str(home), "-c", str(config)]


def _indent(text: str) -> str:
    return "".join(f"    {line}" if line.strip() else line for line in text.splitlines(keepends=True))

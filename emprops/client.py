"""The only module that talks to EmProps (its Open API at EMPROPS_API_URL, `Authorization: Bearer
EMPROPS_API_KEY`): one `requests` session with urllib3 `Retry` for idempotent methods (429 and 5xx,
honouring Retry-After), connect and read timeouts, a client-side rate limit, and typed errors. No
secret is ever logged: URLs are logged without their query, and the key only travels in a header.

POSTs are not retried here: the caller owns their retry schedule (`emprops/notifications.py`), and
sends an `Idempotency-Key` so that EmProps can drop a repeat. Paths are built with `path`, which
percent-encodes every segment: an id never steers the request elsewhere on EmProps' host."""

from __future__ import annotations

import logging
import threading
import time
from urllib.parse import quote

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from wire.json_types import JsonObject, JsonValue

logger = logging.getLogger(__name__)


class EmpropsError(Exception):
    """EmProps did not do what was asked. `status` is its HTTP status (None: no answer)."""

    transient = False

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status, self.retry_after = status, retry_after


class EmpropsTransient(EmpropsError):
    """Try again later: no answer, a timeout, 429, 408 or a 5xx."""

    transient = True


class EmpropsPermanent(EmpropsError):
    """EmProps refused the request (a 4xx other than 404, 408 and 429): sending it again will not help."""


class EmpropsNotFound(EmpropsPermanent):
    """EmProps does not know it (404)."""


class EmpropsNotConfigured(EmpropsPermanent):
    """EMPROPS_API_URL is not set."""


class _RateLimit:
    """At most `per_second` requests a second from this process (a simple spacing of requests)."""

    def __init__(self, per_second: float) -> None:
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)


def path(*segments: str) -> str:
    """`/a/b/c` from its segments, each percent-encoded whole: a `/`, `?` or `#` in one is data. An
    empty segment or one of dots alone (which URLs resolve as a step, encoded or not) is refused."""
    for segment in segments:
        if not segment.strip("."):
            raise EmpropsPermanent(f"{segment!r} cannot be a segment of an EmProps URL")
    return "".join(f"/{quote(segment, safe='')}" for segment in segments)


class EmpropsClient:
    def __init__(self, base_url: str | None = None, api_key: str | None = None) -> None:
        self.base_url = (base_url if base_url is not None else settings.EMPROPS_API_URL).rstrip("/")
        self._api_key = api_key if api_key is not None else settings.EMPROPS_API_KEY
        retry = Retry(
            total=settings.EMPROPS_RETRIES,
            backoff_factor=0.5,
            status_forcelist=(429, 500, 502, 503, 504),
            allowed_methods=Retry.DEFAULT_ALLOWED_METHODS,  # idempotent ones only: never POST
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        self.session = requests.Session()
        self.session.mount("http://", HTTPAdapter(max_retries=retry))
        self.session.mount("https://", HTTPAdapter(max_retries=retry))
        self._rate = _RateLimit(settings.EMPROPS_MAX_REQUESTS_PER_SECOND)

    def get(self, path: str) -> JsonValue:
        return self._call("GET", path)

    def post(self, path: str, body: JsonObject, idempotency_key: str | None = None) -> JsonValue:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._call("POST", path, body, headers)

    def _call(
        self, method: str, path: str, body: JsonObject | None = None, headers: dict[str, str] | None = None
    ) -> JsonValue:
        if not self.base_url:
            raise EmpropsNotConfigured("EMPROPS_API_URL is not set")
        self._rate.wait()
        url = f"{self.base_url}{path}"
        try:
            response = self.session.request(
                method,
                url,
                json=body,
                headers={"Authorization": f"Bearer {self._api_key}", **(headers or {})},
                timeout=(settings.EMPROPS_CONNECT_TIMEOUT_SECONDS, settings.EMPROPS_READ_TIMEOUT_SECONDS),
            )
        except requests.RequestException as exc:
            logger.warning("EmProps %s %s: no answer (%s)", method, path, type(exc).__name__)
            raise EmpropsTransient(f"no answer from EmProps: {type(exc).__name__}") from exc
        return _answer(method, path, response)


def _answer(method: str, path: str, response: requests.Response) -> JsonValue:
    status = response.status_code
    if status < 300:
        try:
            return response.json() if response.content else None
        except ValueError:
            return None
    excerpt = response.text[:300]
    logger.warning("EmProps %s %s answered %s", method, path, status)
    if status == 404:
        raise EmpropsNotFound(f"EmProps has no {path}", status)
    if status in (408, 429) or status >= 500:
        raise EmpropsTransient(f"EmProps answered {status}: {excerpt}", status, _retry_after(response))
    raise EmpropsPermanent(f"EmProps refused it ({status}): {excerpt}", status)


def _retry_after(response: requests.Response) -> float | None:
    try:
        return float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None

"""Django settings. Every value is read from the environment here and nowhere else."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import django_stubs_ext

from core import http_servers
from devstack import embedded
from settings.env import env_bool, env_float, env_int, env_list, env_str
from wire import logs, names
from wire.json_types import JsonObject

django_stubs_ext.monkeypatch()  # ModelAdmin[Machine] and the like, for the type checker

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("JOBQUEUE_DATA_DIR", str(BASE_DIR / ".data"))).resolve()

# --- Core -------------------------------------------------------------------------------------------
DEBUG = env_bool("DJANGO_DEBUG", False)
# The development key is only for the embedded stack; deployments set DJANGO_SECRET_KEY
# (`manage.py check --deploy` fails while it is in use: core/checks.py).
DEVELOPMENT_SECRET_KEY = "dev-only-insecure-secret-key-change-me"
SECRET_KEY = env_str("DJANGO_SECRET_KEY", DEVELOPMENT_SECRET_KEY)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "corsheaders",
    "channels",
    # Ours, lowest layer first (the import contracts in pyproject.toml keep this order honest).
    "core",
    "counters",
    "outbox",
    "accounts",
    "events",
    "jobqueue",
    "machines",
    "dispatch",
    "workflows",
    "webhooks",
    "live",
    "emprops",
    "metrics",
    "retention",
    "devstack",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "corsheaders.middleware.CorsMiddleware",  # before anything that may answer
    "core.api.middleware.RefuseBadUrls",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "core.api.middleware.CorrelationIdMiddleware",
]

ROOT_URLCONF = "settings.urls"
ASGI_APPLICATION = "settings.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "staticfiles"

# --- Postgres: DATABASE_URL, or the embedded server -------------------------------------------------
EMBEDDED_PG_PORT = env_int("JOBQUEUE_EMBEDDED_PG_PORT", embedded.DEFAULT_PG_PORT)
EMBEDDED_REDIS_PORT = env_int("JOBQUEUE_EMBEDDED_REDIS_PORT", embedded.DEFAULT_REDIS_PORT)
EMBEDDED_REDIS_MAXMEMORY = env_str("JOBQUEUE_EMBEDDED_REDIS_MAXMEMORY") or embedded.DEFAULT_REDIS_MAXMEMORY
DATABASE_URL = env_str("DATABASE_URL") or embedded.EmbeddedPostgres(DATA_DIR, EMBEDDED_PG_PORT).url
REDIS_URL = env_str("REDIS_URL") or embedded.EmbeddedRedis(DATA_DIR, EMBEDDED_REDIS_PORT).url
# Joins (`POST /api/fleet/join`) one client address may make a minute: a rented host joins once and
# keeps its credential, so more is a script guessing tokens or a host in a restart loop.
FLEET_JOINS_PER_MINUTE = env_int("FLEET_JOINS_PER_MINUTE", 30)
USES_EMBEDDED_POSTGRES = not env_str("DATABASE_URL")
USES_EMBEDDED_REDIS = not env_str("REDIS_URL")


# A connection pool per process, turned on by the HTTP servers' entry points (settings.asgi and
# settings.wsgi): under ASGI Django runs each request in a fresh thread, so thread-local persistent
# connections would reconnect on every request; a WSGI server's threads share the pool.
# Celery's prefork children keep plain persistent connections (a pool's threads do not survive fork).
DATABASE_POOL = env_bool("DATABASE_POOL", False)
DATABASE_POOL_MAX_SIZE = env_int("DATABASE_POOL_MAX_SIZE", 20)
# How long a request waits for a pooled connection before answering 503 (Postgres down or saturated).
DATABASE_POOL_TIMEOUT_SECONDS = env_float("DATABASE_POOL_TIMEOUT_SECONDS", 5.0)
# The dispatcher's and the reports' hot statements are prepared once per session and planned once
# (`core.db.prepared_cursor`; planning was 3.5 of an offer's 5 ms). Turn off behind a pooler that
# cannot keep prepared statements (PgBouncer in transaction mode before 1.21).
DATABASE_PREPARED_STATEMENTS = env_bool("DATABASE_PREPARED_STATEMENTS", True)


# Statement and lock timeouts (ms; 0 = none) by kind of process, so one stuck statement or lock
# wait cannot hold a request or a lane forever (`core.db.limit_sessions`, called by each entry
# point: the HTTP servers "api"; Celery workers, beat, the lane consumers and the relay "control").
# Migrations and one-off commands get none (a migration may rightly lock a large table for minutes).
# A request past its limit answers 503.
DATABASE_TIMEOUTS_MS = {
    "api": (env_int("API_STATEMENT_TIMEOUT_MS", 30_000), env_int("API_LOCK_TIMEOUT_MS", 10_000)),
    "control": (env_int("CONTROL_STATEMENT_TIMEOUT_MS", 300_000), env_int("CONTROL_LOCK_TIMEOUT_MS", 60_000)),
}


def _database_from_url(url: str) -> JsonObject:
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql"}:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(f"DATABASE_URL must be a postgresql:// URL, got scheme {parts.scheme!r}")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parts.path.lstrip("/") or "postgres",
        "USER": parts.username or "",
        "PASSWORD": parts.password or "",
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
        "CONN_MAX_AGE": 0 if DATABASE_POOL else env_int("DATABASE_CONN_MAX_AGE", 60),
        # Checked before use (for a pool, by psycopg_pool), so no request fails on a connection that
        # a Postgres restart broke.
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {
            # Only `core.db.prepared_cursor`'s statements can be prepared: Django's own cursors bind
            # on the client, which never prepares. 0 = on their first run; None = never.
            "prepare_threshold": 0 if DATABASE_PREPARED_STATEMENTS else None,
            **(
                {
                    "pool": {
                        "min_size": 2,
                        "max_size": DATABASE_POOL_MAX_SIZE,
                        "timeout": DATABASE_POOL_TIMEOUT_SECONDS,
                    }
                }
                if DATABASE_POOL
                else {}
            ),
        },
        "TEST": {"NAME": env_str("DATABASE_TEST_NAME") or None},
    }


DATABASES = {"default": _database_from_url(DATABASE_URL)}

# --- API --------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "core.api.parsers.CheckedJSONParser",
        "core.api.parsers.AnyContentTypeJSONParser",
    ],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.api.errors.envelope_exception_handler",
    "UNAUTHENTICATED_USER": None,
}
GIT_COMMIT = env_str("GIT_COMMIT", "")  # set by the image build; a checkout reads .git (core/version.py)
# Browser clients on other origins (django-cors-headers): none unless listed, e.g.
# CORS_ALLOWED_ORIGINS=https://app.emprops.ai,https://miniapp.example.com
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS", [])
CORS_URLS_REGEX = r"^/(api/|health|version)"
CORS_ALLOW_HEADERS = ("accept", "authorization", "content-type", "x-api-key", "x-correlation-id")

SPECTACULAR_SETTINGS = {
    "TITLE": "GPU job queue API",
    "DESCRIPTION": "Submit, route and watch GPU jobs. Authenticate with the `x-api-key` header.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Requests and responses as separate components: read-only fields are not asked for.
    "COMPONENT_SPLIT_REQUEST": True,
    # Bodies are documented as application/json (any other content type is read as JSON too).
    "PARSER_WHITELIST": ["core.api.parsers.CheckedJSONParser"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.api.schema.document_errors",
        "settings.api_links.add_links",
    ],
    # Several models have a `status` with different choices: name each set.
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "jobqueue.models.JobStatus",
        "WorkflowStatusEnum": "workflows.models.WorkflowStatus",
        "DeliveryStatusEnum": "webhooks.models.DeliveryStatus",
        "EmpropsNotificationStatusEnum": "emprops.models.NotificationStatus",
        "DeadLetterReasonEnum": "webhooks.models.DeliveryDeadLetterReason",
        "EmpropsDeadLetterReasonEnum": "emprops.models.NotificationDeadLetterReason",
    },
}
API_PAGE_SIZE_DEFAULT = env_int("API_PAGE_SIZE_DEFAULT", 50)
API_PAGE_SIZE_MAX = env_int("API_PAGE_SIZE_MAX", 500)
# Lists count their rows up to this many (then say the total is at least that): a bounded cost.
API_COUNT_MAX = env_int("API_COUNT_MAX", 10_000)
# A pending job's `eligibility` (GET /api/jobs/{id}) counts eligible workers up to this many.
EXPLAIN_WORKERS_MAX = env_int("EXPLAIN_WORKERS_MAX", 100)
# Largest request body (a job's payload with inline images can be big); larger is a 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("API_MAX_BODY_BYTES", 10 * 1024 * 1024)
# Deepest JSON taken in a body or a WebSocket message (a ComfyUI workflow is under ten levels).
API_JSON_MAX_DEPTH = env_int("API_JSON_MAX_DEPTH", 64)
API_JSON_MAX_KEY_LENGTH = env_int("API_JSON_MAX_KEY_LENGTH", 1000)

# --- Tenants' quotas (each tenant may set its own: accounts.models.Tenant) -----------------------------
# Defaults a single-team install never meets: the benchmarks submit ~1,500 jobs/s in batches and keep
# backlogs of 100,000 jobs.
TENANT_MAX_QUEUED_JOBS = env_int("TENANT_MAX_QUEUED_JOBS", 1_000_000)
TENANT_MAX_SUBMITS_PER_SECOND = env_int("TENANT_MAX_SUBMITS_PER_SECOND", 10_000)
TENANT_MAX_WEBHOOK_ENDPOINTS = env_int("TENANT_MAX_WEBHOOK_ENDPOINTS", 100)
TENANT_MAX_SCHEDULES = env_int("TENANT_MAX_SCHEDULES", 1_000)

# --- Jobs and dispatch ------------------------------------------------------------------------------
JOB_DEFAULT_PRIORITY = 50
# Largest result (or error) a worker's report may store; larger outputs belong in the artifact store,
# referenced by URL. A larger one fails its attempt for good, saying why.
JOB_RESULT_MAX_BYTES = env_int("JOB_RESULT_MAX_BYTES", 1024 * 1024)
JOB_DEFAULT_MAX_RETRIES = env_int("JOB_DEFAULT_MAX_RETRIES", 3)
JOB_DEFAULT_TIMEOUT_SECONDS = env_int("JOB_DEFAULT_TIMEOUT_SECONDS", 1800)
JOB_MAX_TIMEOUT_SECONDS = env_int("JOB_MAX_TIMEOUT_SECONDS", 24 * 3600)
# The most jobs one POST /api/jobs/batch may carry.
JOB_BATCH_MAX_JOBS = env_int("JOB_BATCH_MAX_JOBS", 1000)

# --- HTTP servers (core.http_servers; bench/run_api_bench.py measures them) ---------------------
# The REST API runs under a WSGI server, cheaper per request than the ASGI server; the ASGI server
# carries the WebSockets; the front (nginx, docker/nginx/) routes between them on one public port.
API_SERVER = env_str("API_SERVER") or http_servers.DEFAULT_API_SERVER
API_PROCESSES = env_int("API_PROCESSES", 1)
LIVE_SERVER = env_str("LIVE_SERVER") or http_servers.DEFAULT_LIVE_SERVER
FRONT_MAX_BODY = str(DATA_UPLOAD_MAX_MEMORY_SIZE)

# Retries: exponential backoff with full jitter (see jobqueue/backoff.py).
RETRY_BACKOFF_BASE_SECONDS = env_float("RETRY_BACKOFF_BASE_SECONDS", 1.0)
RETRY_BACKOFF_FACTOR = env_float("RETRY_BACKOFF_FACTOR", 2.0)
RETRY_BACKOFF_CAP_SECONDS = env_float("RETRY_BACKOFF_CAP_SECONDS", 300.0)
# A job whose attempts keep killing their worker (out of GPU memory, segfault) is dead-lettered
# after this many lost attempts instead of taking down the fleet.
POISON_LOST_ATTEMPTS = env_int("POISON_LOST_ATTEMPTS", 3)
# --- Event log ------------------------------------------------------------------------------------
# At most one job_progress event per job per this interval (the job row always has the latest).
PROGRESS_EVENT_MIN_INTERVAL_SECONDS = env_float("PROGRESS_EVENT_MIN_INTERVAL_SECONDS", 0.5)
# Events older than this are pruned by beat (retention/pruning.py), this many per transaction.
EVENT_RETENTION_DAYS = env_float("EVENT_RETENTION_DAYS", 7)
EVENT_PRUNE_BATCH = env_int("EVENT_PRUNE_BATCH", 10_000)
# The relay (manage.py relay_events) polls this often when idle, and publishes this many at a time.
# The relay and the webhook pump wake when events commit (LISTEN/NOTIFY); they also look this often.
EVENT_RELAY_POLL_SECONDS = env_float("EVENT_RELAY_POLL_SECONDS", 0.5)
EVENT_RELAY_BATCH = env_int("EVENT_RELAY_BATCH", 500)
# Within a priority, tenants share the fleet by weight (docs/scheduling.md); off: one first-come order.
SCHEDULING_FAIR_SHARE = env_bool("SCHEDULING_FAIR_SHARE", True)
# What `manage.py relay_events` runs: each is `run(stop, wake)` reading the log through its own cursor.
# A comma-separated list of their dotted paths splits them over several processes.
EVENT_CONSUMERS = env_list(
    "EVENT_CONSUMERS",
    [
        "events.relay.run_relay",
        "webhooks.pump.run_webhook_pump",
        "emprops.pump.run_emprops_pump",
        "metrics.folding.run_metrics_pump",
    ],
)
# What a reconnecting WebSocket client may replay with `resume`, at most.
LIVE_RESUME_MAX_EVENTS = env_int("LIVE_RESUME_MAX_EVENTS", 5000)
# Largest WebSocket message a client may send (a job submitted over /ws/client carries its payload);
# larger gets an error message and the connection stays up.
LIVE_MAX_MESSAGE_BYTES = env_int("LIVE_MAX_MESSAGE_BYTES", 1024 * 1024)
# The most subscriptions (jobs, workflows, machines, everything) one WebSocket follows at once; a job
# followed over /ws/client is let go once its completion is sent.
LIVE_MAX_SUBSCRIPTIONS = env_int("LIVE_MAX_SUBSCRIPTIONS", 5000)

# The most steps one workflow may have (the replaced system's limit).
WORKFLOW_MAX_STEPS = env_int("WORKFLOW_MAX_STEPS", 50)
# Most dead letters one bulk requeue request redrives; the response says how many remain.
DEAD_LETTER_REQUEUE_MAX = env_int("DEAD_LETTER_REQUEUE_MAX", 1000)
# The control plane fails an attempt this long past its timeout with no outcome reported.
JOB_TIMEOUT_GRACE_SECONDS = env_float("JOB_TIMEOUT_GRACE_SECONDS", names.HARD_TIMEOUT_GRACE_SECONDS)
# A worker counts as live for dispatch while its last heartbeat is this recent.
WORKER_OFFLINE_AFTER_SECONDS = env_float("WORKER_OFFLINE_AFTER_SECONDS", 30.0)
# ... plus the fleet lane's measured lag, up to this much (machines/lane_lag.py).
WORKER_OFFLINE_LAG_ALLOWANCE_MAX_SECONDS = env_float("WORKER_OFFLINE_LAG_ALLOWANCE_MAX_SECONDS", 60.0)
# An assignment its live worker still says it never received this long after it was made was lost.
ASSIGNMENT_DELIVERY_GRACE_SECONDS = env_float("ASSIGNMENT_DELIVERY_GRACE_SECONDS", 15.0)
# Safety-net sweeps run by Celery beat (each is also triggered by the events that need it).
DISPATCH_SWEEP_SECONDS = env_float("DISPATCH_SWEEP_SECONDS", 5.0)
SCHEDULED_RELEASE_SECONDS = env_float("SCHEDULED_RELEASE_SECONDS", 1.0)
# Where the cancellation flag of a running job is mirrored for GPU workers (broker Redis, no DB access).
CANCEL_FLAG_TTL_SECONDS = env_int("CANCEL_FLAG_TTL_SECONDS", 7 * 24 * 3600)
# The same flag confirms a final report to its worker, which re-sends unconfirmed ones for minutes.
REPORT_CONFIRMATION_TTL_SECONDS = env_int("REPORT_CONFIRMATION_TTL_SECONDS", 900)

# --- Celery (Redis broker; Postgres is the record, Celery results are not used) ---------------------
CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# The control plane's lanes, each consumed by workers of its own (`runstack`, docker/compose.yml):
# GPU workers' job reports, the fleet's registrations and heartbeats, and beat's sweeps, so a flood
# in one (a thousand heartbeats) never starves another (recovery when it is needed most).
# Reports and the fleet's messages are applied in batches by `manage.py consume_lanes` (a transaction
# per batch, not per message); beat's sweeps by a Celery worker. Lane -> processes that consume it.
SWEEPS_QUEUE = "sweeps"
# The control plane's own tasks that name no queue run beside the sweeps (GPU workers' lanes carry
# only their messages).
CELERY_TASK_DEFAULT_QUEUE = SWEEPS_QUEUE
BATCHED_LANES = (names.CONTROL_LANE, names.FLEET_LANE)
CONTROL_PLANE_LANES = {
    names.CONTROL_LANE: env_int("CONTROL_LANE_CONSUMERS", 1),
    names.FLEET_LANE: env_int("FLEET_LANE_CONSUMERS", 1),
    SWEEPS_QUEUE: 1,
}
# A batch takes what has arrived, up to this many messages (also the messages a consumer holds
# unacknowledged), waiting up to the lane's linger after its first for more. Under load a batch fills
# by itself while the previous one applies; a linger trades latency for fewer, larger batches when
# messages trickle in: none for reports (a job's completion waits on it), a tenth of a second for
# heartbeats (nothing waits on those; a thousand workers' 200/s then come in batches of ~20).
# Consumers need Redis 6.2 or later (RPOP with a count, BLMOVE).
LANE_BATCH_MAX_MESSAGES = env_int("LANE_BATCH_MAX_MESSAGES", 500)
LANE_BATCH_LINGER_SECONDS = {
    names.CONTROL_LANE: env_float("CONTROL_LANE_LINGER_SECONDS", 0.0),
    names.FLEET_LANE: env_float("FLEET_LANE_LINGER_SECONDS", 0.1),
}
# The edge of the lanes (core.batch_consumer): a worker's message larger than this is refused before it
# is decoded (a report's result may be JOB_RESULT_MAX_BYTES, base64 in kombu's envelope: 4/3 of it);
# one take applies at most this many of one worker's messages, so a worker that floods delays no one
# else; beyond this many waiting in its lane the newest of a worker's messages are dropped (an honest
# worker holds a few: a heartbeat every few seconds, its slots' reports); a message taken this often
# (its consumer died applying it each time) goes to the lanes' dead-letter list, which keeps this many.
LANE_MAX_MESSAGE_BYTES = env_int("LANE_MAX_MESSAGE_BYTES", 2 * JOB_RESULT_MAX_BYTES)
LANE_SENDER_SHARE = env_int("LANE_SENDER_SHARE", 50)
LANE_MAX_WAITING_PER_SENDER = env_int("LANE_MAX_WAITING_PER_SENDER", 1000)
LANE_MAX_DELIVERIES = env_int("LANE_MAX_DELIVERIES", 3)
LANE_DEAD_LETTERS_MAX = env_int("LANE_DEAD_LETTERS_MAX", 1000)
# Consumers learn of each push from the broker (keyspace notifications) and look at every worker's
# lists on connecting; this often they look again anyway (at 1,000 workers a look is one script over
# 1,000 lists, so not every second).
LANE_SWEEP_SECONDS = env_float("LANE_SWEEP_SECONDS", 30.0)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Kombu's Redis transport, made to survive losing Redis with unacknowledged messages (gpu_worker/transport.py).
CELERY_BROKER_TRANSPORT = "gpu_worker.transport:ControlPlaneTransport"
# The control queue's unacknowledged messages (reports; each takes milliseconds) are kept under keys
# of their own, so a control worker that died holding some gets them redelivered after minutes, while
# GPU workers' job messages keep the long visibility timeout they need (see docs/architecture.md).
CONTROL_VISIBILITY_TIMEOUT_SECONDS = env_int("CONTROL_VISIBILITY_TIMEOUT_SECONDS", 600)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CONTROL_VISIBILITY_TIMEOUT_SECONDS,
    "unacked_key": "unacked:control",
    "unacked_index_key": "unacked_index:control",
    "unacked_mutex_key": "unacked_mutex:control",
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Celery closes Django's database connection around every task unless told to reuse it this many
# times. Reconnecting cost a webhook delivery about two thirds of its CPU in the benchmark; a reused
# connection is checked before each task (settings/celery.py). 0 restores Celery's default.
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1000) or None
# Task events cost publishes per task; Flower switches them on at runtime while it runs.
CELERY_WORKER_SEND_TASK_EVENTS = False
CELERY_TASK_SEND_SENT_EVENT = False  # costs a publish per task; workers report events when Flower asks
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
# Worker reports that meet an unreachable database retry with backoff up to this interval, forever.
REPORT_RETRY_BACKOFF_MAX_SECONDS = env_int("REPORT_RETRY_BACKOFF_MAX_SECONDS", 10)
# Flower's login ("user:password"); `scripts/run` makes a development one when unset.
FLOWER_BASIC_AUTH = env_str("FLOWER_BASIC_AUTH")

# --- Webhooks ---------------------------------------------------------------------------------------
# The wait before each retry (the first attempt is at once: `outbox/schedule.py`), jittered by
# +/- WEBHOOK_RETRY_JITTER of itself. Default as Svix: about 17 hours of retries over 7 attempts.
WEBHOOK_RETRY_SCHEDULE_SECONDS = [
    float(s)
    for s in env_list("WEBHOOK_RETRY_SCHEDULE_SECONDS", ["5", "300", "1800", "7200", "18000", "36000"])
]
WEBHOOK_RETRY_JITTER = env_float("WEBHOOK_RETRY_JITTER", 0.2)
WEBHOOK_TIMEOUT_SECONDS = env_float("WEBHOOK_TIMEOUT_SECONDS", 10.0)
WEBHOOK_DNS_TIMEOUT_SECONDS = env_float("WEBHOOK_DNS_TIMEOUT_SECONDS", 5.0)
# Threads resolving receivers' names, and how many of them one tenant's lookups may hold at once.
WEBHOOK_DNS_THREADS = env_int("WEBHOOK_DNS_THREADS", 32)
WEBHOOK_DNS_LOOKUPS_PER_TENANT = env_int("WEBHOOK_DNS_LOOKUPS_PER_TENANT", 4)
# A receiver's Retry-After is honoured up to this long.
WEBHOOK_MAX_RETRY_AFTER_SECONDS = env_int("WEBHOOK_MAX_RETRY_AFTER_SECONDS", 24 * 3600)
# An endpoint whose deliveries have failed without a single success for this long is disabled.
WEBHOOK_DISABLE_AFTER_SECONDS = env_float("WEBHOOK_DISABLE_AFTER_SECONDS", 5 * 24 * 3600)
# After a secret rotation the previous secret still signs (a second signature) for this long.
WEBHOOK_SECRET_OVERLAP_SECONDS = env_int("WEBHOOK_SECRET_OVERLAP_SECONDS", 24 * 3600)
# Networks webhook targets may resolve to despite being loopback/private (CIDRs; development, tests).
WEBHOOK_ALLOWED_NETWORKS = env_list("WEBHOOK_ALLOWED_NETWORKS")
# Signing secrets and endpoints' header values are stored encrypted with the first of these keys (any
# strings) and read with any of them: to rotate, put a new key first, run `manage.py
# rotate_webhook_secrets`, then drop the old one. Unset, one key derived from SECRET_KEY (development;
# `check --deploy` refuses it, as changing SECRET_KEY would then break every delivery).
WEBHOOK_SECRETS_KEYS = env_list("WEBHOOK_SECRETS_KEYS") or [env_str("WEBHOOK_SECRETS_KEY") or SECRET_KEY]
WEBHOOK_QUEUE = "webhooks"
WEBHOOK_DELIVERY_CONCURRENCY = env_int("WEBHOOK_DELIVERY_CONCURRENCY", 16)
# A delivery handed to the queue is handed again if no worker took it this long (a lost message).
WEBHOOK_DISPATCH_LEASE_SECONDS = env_int("WEBHOOK_DISPATCH_LEASE_SECONDS", 600)
# At most this long between pump passes (it wakes on new events and when the next retry is due).
WEBHOOK_PUMP_POLL_SECONDS = env_float("WEBHOOK_PUMP_POLL_SECONDS", 0.5)
WEBHOOK_PUMP_BATCH = env_int("WEBHOOK_PUMP_BATCH", 500)
WEBHOOK_RESPONSE_EXCERPT_CHARS = env_int("WEBHOOK_RESPONSE_EXCERPT_CHARS", 1000)
WEBHOOK_USER_AGENT = "jobqueue-webhooks/1.0"


# --- EmProps (emprops/): its Open API, and how its workflows' endings are told to it -----------------
EMPROPS_API_URL = env_str("EMPROPS_API_URL", "")
EMPROPS_API_KEY = env_str("EMPROPS_API_KEY", "")
EMPROPS_CONNECT_TIMEOUT_SECONDS = env_float("EMPROPS_CONNECT_TIMEOUT_SECONDS", 5.0)
EMPROPS_READ_TIMEOUT_SECONDS = env_float("EMPROPS_READ_TIMEOUT_SECONDS", 30.0)
EMPROPS_RETRIES = env_int("EMPROPS_RETRIES", 3)  # for idempotent requests, inside one call
EMPROPS_MAX_REQUESTS_PER_SECOND = env_float("EMPROPS_MAX_REQUESTS_PER_SECOND", 20.0)
# The wait before each retry of a notification, as for webhooks (then it is dead-lettered).
EMPROPS_RETRY_SCHEDULE_SECONDS = [
    float(s) for s in env_str("EMPROPS_RETRY_SCHEDULE_SECONDS", "5,30,120,600,1800,3600").split(",") if s
]
EMPROPS_MAX_RETRY_AFTER_SECONDS = env_float("EMPROPS_MAX_RETRY_AFTER_SECONDS", 3600.0)
EMPROPS_NOTIFY_BATCH = env_int("EMPROPS_NOTIFY_BATCH", 100)
EMPROPS_PUMP_POLL_SECONDS = env_float("EMPROPS_PUMP_POLL_SECONDS", 1.0)


# --- Retention (retention/pruning.py): days each kind is kept once finished; beat prunes in batches --
RETENTION_JOBS_DAYS = env_float("RETENTION_JOBS_DAYS", 30)  # jobs and workflows, with executions and events
RETENTION_WEBHOOK_DELIVERIES_DAYS = env_float("RETENTION_WEBHOOK_DELIVERIES_DAYS", 30)  # and their attempts
RETENTION_DEAD_LETTERS_DAYS = env_float("RETENTION_DEAD_LETTERS_DAYS", 30)  # requeued ones' history
RETENTION_RETIRED_WORKERS_DAYS = env_float("RETENTION_RETIRED_WORKERS_DAYS", 7)  # offline workers, machines
RETENTION_BATCH = env_int("RETENTION_BATCH", 1000)  # rows per transaction
RETENTION_MAX_BATCHES = env_int("RETENTION_MAX_BATCHES", 50)  # per kind and run: a run stays short
RETENTION_PRUNE_SECONDS = env_float("RETENTION_PRUNE_SECONDS", 600)
# Where pruned rows are appended as JSON lines first (<kind>-<date>.jsonl); empty: not exported.
RETENTION_EXPORT_DIR = env_str("RETENTION_EXPORT_DIR", "")

# --- Metrics (metrics/, docs/operations.md) ----------------------------------------------------------
# /metrics answers a scraper with this bearer token; unset, only clients in METRICS_ALLOWED_NETWORKS.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
METRICS_ALLOWED_NETWORKS = env_list("METRICS_ALLOWED_NETWORKS", ["127.0.0.0/8", "::1/128"])
# Label values clients choose (job types, error codes): the first this many of each, then "other".
METRICS_MAX_LABEL_VALUES = env_int("METRICS_MAX_LABEL_VALUES", 100)
METRICS_FOLD_BATCH = env_int("METRICS_FOLD_BATCH", 1000)
# Rows each counter series is split over, so concurrent writers rarely wait on one another.
COUNTER_SHARDS = env_int("COUNTER_SHARDS", 8)


# --- Channels ---------------------------------------------------------------------------------------
def channel_layer_url(redis_url: str) -> str:
    """Live push on the broker's server but its own database (1): its keys never mix with the
    broker's, and GPU workers' users reach neither (`machines/broker_users.py`)."""
    return urlunsplit(urlsplit(redis_url)._replace(path="/1"))


CHANNEL_LAYER_URL = env_str("CHANNEL_LAYER_URL") or channel_layer_url(REDIS_URL)
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # A subscriber's queue holds this many events before the layer drops new ones for it (the
        # default, 100, drops a burst); a client that fell that far behind catches up with `resume`.
        "CONFIG": {
            "hosts": [CHANNEL_LAYER_URL],
            "capacity": env_int("LIVE_CHANNEL_CAPACITY", 5000),
            "expiry": 60,
        },
    }
}

# --- Logging ----------------------------------------------------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
# plain (development) or json (one object per line, with correlation, tenant, job, workflow, worker).
LOG_FORMAT = env_str("LOG_FORMAT", "plain")
LOGGING = logs.dict_config(LOG_LEVEL, LOG_FORMAT)


def _every(seconds: float, task: str) -> JsonObject:
    # A sweep message that waited five periods is stale: a newer one is already on its way.
    return {"task": task, "schedule": seconds, "options": {"expires": seconds * 5, "queue": SWEEPS_QUEUE}}


CELERY_BEAT_SCHEDULE = {
    "release-scheduled-jobs": _every(SCHEDULED_RELEASE_SECONDS, "jobqueue.release_scheduled_jobs"),
    "run-due-schedules": _every(SCHEDULED_RELEASE_SECONDS, "jobqueue.run_due_schedules"),
    "recover-lost-jobs": _every(DISPATCH_SWEEP_SECONDS, "jobqueue.recover_lost_jobs"),
    "fail-timed-out-jobs": _every(DISPATCH_SWEEP_SECONDS, "jobqueue.fail_timed_out_jobs"),
    "dispatch-sweep": _every(DISPATCH_SWEEP_SECONDS, "jobqueue.dispatch_sweep"),
    "prune-old-records": _every(RETENTION_PRUNE_SECONDS, "retention.prune_old_records"),
}

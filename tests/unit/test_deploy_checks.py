"""`manage.py check --deploy` refuses the development defaults, each with its own id."""

from __future__ import annotations

from core.checks import check_exposure, check_secrets, check_services


def _ids(messages) -> set[str]:
    return {m.id for m in messages}


def test_the_development_secret_key_is_an_error(settings):
    settings.SECRET_KEY = settings.DEVELOPMENT_SECRET_KEY
    settings.WEBHOOK_SECRETS_KEYS = [settings.DEVELOPMENT_SECRET_KEY]
    assert {"core.E001", "core.E002"} <= _ids(check_secrets())


def test_webhook_secrets_encrypted_with_the_secret_key_are_an_error(settings):
    settings.SECRET_KEY = "x" * 50
    settings.WEBHOOK_SECRETS_KEYS = ["x" * 50]  # changing SECRET_KEY would break every delivery
    assert "core.E002" in _ids(check_secrets())


def test_real_secrets_and_a_flower_login_pass(settings):
    settings.SECRET_KEY = "x" * 50
    settings.WEBHOOK_SECRETS_KEYS = ["y" * 50]
    settings.FLOWER_BASIC_AUTH = "ops:long-password"
    assert _ids(check_secrets()) == set()


def test_flower_without_a_login_is_a_warning(settings):
    settings.FLOWER_BASIC_AUTH = None
    assert "core.W001" in _ids(check_secrets())


def test_embedded_servers_and_internal_webhook_targets_are_warned_about(settings):
    settings.USES_EMBEDDED_POSTGRES = True
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8", "8.8.8.0/24"]
    settings.ALLOWED_HOSTS = ["*"]
    messages = check_services()
    assert {"core.W002", "core.W003", "core.W004"} <= _ids(messages)
    assert "8.8.8.0/24" not in next(m.msg for m in messages if m.id == "core.W004")


def test_a_production_like_configuration_passes(settings):
    settings.USES_EMBEDDED_POSTGRES = settings.USES_EMBEDDED_REDIS = False
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    settings.ALLOWED_HOSTS = ["api.example.com"]
    assert check_services() == []


def test_an_open_metrics_endpoint_a_broker_without_tls_and_emprops_over_http_are_reported(settings):
    settings.METRICS_TOKEN = ""
    settings.USES_EMBEDDED_REDIS = False
    settings.REDIS_URL = "redis://broker.internal:6379/0"
    settings.EMPROPS_API_URL = "http://api.emprops.ai"
    assert _ids(check_exposure()) == {"core.W005", "core.W006", "core.E003"}


def test_a_token_tls_and_https_pass_and_loopback_needs_no_tls(settings):
    settings.METRICS_TOKEN = "scrape-secret"
    settings.USES_EMBEDDED_REDIS = False
    settings.EMPROPS_API_URL = "https://api.emprops.ai"
    for url in ("rediss://broker.internal:6380/0", "redis://127.0.0.1:6379/0", "redis://localhost/0"):
        settings.REDIS_URL = url
        assert check_exposure() == [], url

"""What is running (`GET /version`): the package's version, the git commit it was built from, and the
API schema's version. The commit comes from GIT_COMMIT (set by the image build) or, in a checkout,
from `.git`; read once per process."""

from __future__ import annotations

import functools
from importlib import metadata
from pathlib import Path

from django.conf import settings

from wire.json_types import JsonObject


@functools.cache
def version_info() -> JsonObject:
    return {
        "version": _package_version(),
        "commit": settings.GIT_COMMIT or _checkout_commit(Path(settings.BASE_DIR)),
        "api_schema_version": settings.SPECTACULAR_SETTINGS["VERSION"],
    }


def _package_version() -> str:
    try:
        return metadata.version("jobqueue")
    except metadata.PackageNotFoundError:
        return "unknown"


def _checkout_commit(root: Path) -> str:
    """The commit `.git/HEAD` names, resolved through a branch ref or packed-refs; "" when unknown."""
    git = root / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head
        ref = head.removeprefix("ref: ")
        if (git / ref).exists():
            return (git / ref).read_text().strip()
        for line in (git / "packed-refs").read_text().splitlines():
            if line.endswith(f" {ref}"):
                return line.split(" ", 1)[0]
    except OSError:
        pass
    return ""

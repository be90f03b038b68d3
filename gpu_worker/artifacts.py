"""Where connectors put the files a job made (images, videos), returning a URL for each.

`local` (default): a folder on the GPU machine, served by whatever the operator points at it
(`ARTIFACT_BASE_URL`), or `file://` URLs. `s3`: any S3-compatible store (AWS, MinIO, R2) through
boto3, answering presigned URLs. Chosen by `ARTIFACT_STORE`; configured by environment variables.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Protocol

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
PRESIGNED_URL_SECONDS = 7 * 24 * 3600


class ArtifactStore(Protocol):
    def put(self, job_id: str, name: str, data: bytes, content_type: str) -> str:
        """Store one file of a job; returns the URL a client fetches it from."""


def safe_name(name: str) -> str:
    """A file name that cannot climb out of its folder or confuse a URL."""
    return _UNSAFE.sub("_", Path(name).name).lstrip(".") or "file"


class LocalArtifactStore:
    def __init__(self, root: str | Path, base_url: str = "") -> None:
        self.root = Path(root)
        self.base_url = base_url.rstrip("/")

    def put(self, job_id: str, name: str, data: bytes, content_type: str) -> str:
        relative = Path(safe_name(job_id)) / safe_name(name)
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return f"{self.base_url}/{relative.as_posix()}" if self.base_url else path.resolve().as_uri()


class S3ArtifactStore:
    def __init__(
        self, bucket: str, prefix: str = "", endpoint_url: str | None = None, client: Any = None
    ) -> None:
        import boto3

        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.client = client or boto3.client("s3", endpoint_url=endpoint_url or None)

    def put(self, job_id: str, name: str, data: bytes, content_type: str) -> str:
        key = "/".join(part for part in (self.prefix, safe_name(job_id), safe_name(name)) if part)
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        url: str = self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=PRESIGNED_URL_SECONDS
        )
        return url


def store_from_environment() -> ArtifactStore:
    kind = os.environ.get("ARTIFACT_STORE", "local")
    if kind == "s3":
        return S3ArtifactStore(
            bucket=os.environ["ARTIFACT_S3_BUCKET"],
            prefix=os.environ.get("ARTIFACT_S3_PREFIX", "jobs"),
            endpoint_url=os.environ.get("ARTIFACT_S3_ENDPOINT_URL"),
        )
    if kind != "local":
        raise ValueError(f"ARTIFACT_STORE must be local or s3, not {kind!r}")
    root = os.environ.get("ARTIFACT_DIR") or str(Path.home() / ".jobqueue-artifacts")
    return LocalArtifactStore(root, os.environ.get("ARTIFACT_BASE_URL", ""))

"""Every app is packaged and copied into the image: a new room cannot be left out of a deployment."""

from __future__ import annotations

import re
import tomllib

from django.conf import settings

from tests.conftest import ROOT


def _packaged() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {name.rstrip("*") for name in config["tool"]["setuptools"]["packages"]["find"]["include"]}


def test_every_installed_app_of_ours_is_packaged():
    ours = {app for app in settings.INSTALLED_APPS if (ROOT / app / "apps.py").exists()}
    assert ours and ours <= _packaged()


def test_the_image_copies_every_packaged_folder():
    copied = set(
        re.findall(r"^COPY (\w+) \./\1$", (ROOT / "docker" / "Dockerfile").read_text(), re.MULTILINE)
    )
    assert copied == _packaged()

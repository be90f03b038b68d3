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


def _third_party_imports(folder: str) -> set[str]:
    import ast
    import sys

    names = set()
    for path in (ROOT / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {name for name in names if name not in sys.stdlib_module_names and name not in _packaged()}


def test_the_gpu_worker_image_installs_every_package_the_worker_imports_and_no_django():
    import importlib.metadata
    import subprocess
    import sys

    distributions = importlib.metadata.packages_distributions()
    needed = {
        dist.lower().replace("_", "-")
        for folder in ("gpu_worker", "wire")  # the worker's code, and the wire contract it imports
        for name in _third_party_imports(folder)
        for dist in distributions[name]
    }
    listed = ROOT / "docker" / "gpu-worker-packages.txt"
    pins = subprocess.run(
        [sys.executable, str(ROOT / "docker" / "pins.py"), str(ROOT / "pyproject.toml"), str(listed)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    installed = {re.split(r"[\[=]", pin)[0] for pin in pins}

    assert needed <= installed, needed - installed
    assert not {"django", "psycopg", "djangorestframework"} & installed
    image = (ROOT / "docker" / "gpu-worker.Dockerfile").read_text()
    copied = {
        source
        for line in re.findall(r"^COPY (?!--from)(.+) \S+$", image, re.MULTILINE)
        for source in line.split()
    }
    assert copied == {
        "gpu_worker",
        "wire",
        "pyproject.toml",
        "docker/gpu-worker-packages.txt",
        "docker/pins.py",
    }

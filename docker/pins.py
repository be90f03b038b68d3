"""Print pyproject.toml's pins of the packages a list names: `python pins.py pyproject.toml names.txt`.
The GPU worker image installs a subset of the project's packages without repeating their versions."""

import re
import sys
import tomllib

with open(sys.argv[1], "rb") as project:
    pins = {
        re.split(r"[\[=<>~ ]", spec, maxsplit=1)[0].lower(): spec
        for spec in tomllib.load(project)["project"]["dependencies"]
    }
with open(sys.argv[2]) as names:
    wanted = [line.split("#")[0].strip().lower() for line in names]
missing = [name for name in wanted if name and name not in pins]
if missing:
    sys.exit(f"not pinned in {sys.argv[1]}: {', '.join(missing)}")
print("\n".join(pins[name] for name in wanted if name))

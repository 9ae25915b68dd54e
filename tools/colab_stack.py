"""The Colab stack, reproduced: Colab's package versions on Python 3.13, for `make test-colab`.

Usage (the Makefile runs these inside the `.venv-colab` environment)::

    python tools/colab_stack.py constraints OUT     # tools/colab-versions.txt as a pip constraints file
    python tools/colab_stack.py check-install       # 1. a plain `pip install <checkout>` (dry run, no pins: what a
                                                    # user may type) must not change any version listed in
                                                    # tools/colab-versions.txt; 2. install this checkout the way the
                                                    # Colab setup cell does (helpers.core.colab.install) and fail if
                                                    # any listed version changed

``tools/colab-versions.txt`` is a copy of ``../shared/colab/colab-versions.txt`` (Colab's published GPU runtime,
Python 3.13) kept in the repository so that the check runs without ``../shared``; a test keeps the two equal.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VERSIONS = ROOT / "tools" / "colab-versions.txt"
sys.path.insert(0, str(ROOT))

__all__ = ["colab_versions", "mismatches", "plain_install_changes", "main"]


def colab_versions(path: Path = VERSIONS) -> dict[str, str]:
    """``{normalised name: version}`` from a ``name==version`` list (comments ignored)."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            out[name.strip().lower().replace("_", "-")] = version.strip()
    return out


def mismatches(expected: dict[str, str], installed: dict[str, str]) -> list[str]:
    """Every listed package whose installed version is not the listed one (local tags like +cu128 ignored)."""
    return [f"{name}: Colab has {version}, installed {installed.get(name, 'nothing')}"
            for name, version in sorted(expected.items())
            if installed.get(name, "").split("+")[0] != version]


def plain_install_changes(expected: dict[str, str], checkout: Path = ROOT) -> list[str]:
    """What a plain ``pip install <checkout>`` (no constraints) would change among ``expected``: pip's dry run.

    pip keeps an installed version when it satisfies every requirement, so a change here means a requirement of
    the project (or of one of its dependencies) excludes a version Colab ships: bound it in requirements.txt.
    """
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--quiet",
                               "--disable-pip-version-check", "--report", str(report), str(checkout)],
                              capture_output=True, text=True)
        if done.returncode:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-8:])
            return [f"pip's dry run of a plain install failed (exit {done.returncode}):\n{tail}"]
        plan = json.loads(report.read_text())
    changes = []
    for item in plan.get("install", []):
        name = item["metadata"]["name"].lower().replace("_", "-")
        version = item["metadata"]["version"]
        if name in expected and version.split("+")[0] != expected[name]:
            changes.append(f"{name}: Colab has {expected[name]}, a plain pip install would take {version}")
    return changes


def main(argv: list[str]) -> int:
    from helpers.core import colab

    if argv[:1] == ["constraints"] and len(argv) == 2:
        Path(argv[1]).write_text("\n".join(f"{n}=={v}" for n, v in colab_versions().items()) + "\n")
        return 0
    if argv[:1] == ["check-install"]:
        expected = colab_versions()
        before = mismatches(expected, colab.installed_versions())
        if before:
            print("This environment is not Colab's stack:", *before, sep="\n  ", file=sys.stderr)
            return 1
        plain = plain_install_changes(expected)
        if plain:
            print("A plain `pip install` of the project would change Colab's packages (bound the requirement that "
                  "asks for it in requirements.txt):", *plain, sep="\n  ", file=sys.stderr)
            return 1
        added = colab.install(ROOT)
        after = mismatches(expected, colab.installed_versions())
        if after:
            print("Installing the project changed Colab's packages:", *after, sep="\n  ", file=sys.stderr)
            return 1
        print(f"plain and pinned pip install of the project on Colab's stack (Python {sys.version.split()[0]}): none of the "
              f"{len(expected)} versions in {VERSIONS.name} changed; added: {added or 'nothing'}")
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

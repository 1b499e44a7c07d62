"""Builds this plugin into a WebAssembly component with componentize-py:
    python3 build.py

Installs the pinned toolchain (requirements.txt) in .venv/ the first time, copies src/
to build/python/ (componentize-py writes __pycache__ beside the modules it reads) and
writes the component plugin.toml names (build/<name>.wasm). Nothing is written beside
the sources.
"""

import os
import re
import shutil
import subprocess
import sys
import time
import venv

HERE = os.path.dirname(os.path.abspath(__file__))
WORLDS = {
    "action": "local:plugin/action",
    "data-source": "local:plugin/data-source",
    "functions": "local:plugin/functions",
}


def field(manifest: str, key: str):
    m = re.search(rf'^{key}\s*=\s*"([^"]+)"', manifest, re.M)
    return m.group(1) if m else None


def toolchain() -> str:
    """componentize-py at the pinned version, in .venv/ (installed when it changes)."""
    env = os.path.join(HERE, ".venv")
    bin_dir = "Scripts" if os.name == "nt" else "bin"
    tool = os.path.join(env, bin_dir, "componentize-py")
    wanted = os.path.join(HERE, "requirements.txt")
    seen = os.path.join(env, "requirements.txt")
    if not (os.path.exists(tool) and open(wanted).read() == _read(seen)):
        venv.create(env, with_pip=True)
        pip = os.path.join(env, bin_dir, "pip")
        subprocess.run(
            [pip, "install", "--quiet", "--disable-pip-version-check", "-r", wanted],
            check=True,
        )
        shutil.copyfile(wanted, seen)
    return tool


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def main() -> int:
    with open(os.path.join(HERE, "plugin.toml")) as f:
        manifest = f.read()
    kind = field(manifest, "kind")
    if kind not in WORLDS:
        print(f'plugin.toml: kind: "{kind}" is not action, data-source or functions', file=sys.stderr)
        return 1
    out = os.path.join(HERE, field(manifest, "component") or f"build/{field(manifest, 'name')}.wasm")
    tool = toolchain()
    sources = os.path.join(HERE, "build", "python")
    shutil.rmtree(sources, ignore_errors=True)
    shutil.copytree(os.path.join(HERE, "src"), sources, ignore=shutil.ignore_patterns("__pycache__"))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    started = time.time()
    subprocess.run(
        [tool, "--quiet", "-d", os.path.join(HERE, "wit"), "-w", WORLDS[kind],
         "componentize", "-p", sources, "app", "-o", out],
        check=True,
        env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"),
    )
    print(f"built {out}: {os.path.getsize(out)} bytes in {time.time() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# Set up Ghost in ./.venv: torch 2.13.0 (CPU) first, then Ghost and its extras.
# Installing torch first matters: asking pip for Ghost's torch range with no torch present
# can pull a multi-GB CUDA build. Also installs tcmalloc (Debian's libtcmalloc-minimal4)
# when running as root on a Debian-like system: Ghost trains ~3x faster with it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

have_tcmalloc() { compgen -G "/usr/lib*/libtcmalloc_minimal.so.4" >/dev/null || compgen -G "/usr/lib/*/libtcmalloc_minimal.so.4" >/dev/null; }
if ! have_tcmalloc; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    { apt-get install -y -qq libtcmalloc-minimal4 || { apt-get update -qq && apt-get install -y -qq libtcmalloc-minimal4; }; } >/dev/null 2>&1 || true
  fi
  have_tcmalloc || echo "setup: tcmalloc not found; Ghost will use the system allocator (slower). On Debian/Ubuntu: apt-get install libtcmalloc-minimal4" >&2
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check torch==2.13.0 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev,bench,plots]" 2>&1 | grep -v "^WARNING: Location" || true
# Ghost's bytecode, compiled once: the editable install leaves none, and where Python may not
# write it (PYTHONDONTWRITEBYTECODE, a read-only checkout) every `ghost` command would compile
# its modules again (~0.1 s of a 2.5 s `ghost ask` on a 2-core Zen 1).
.venv/bin/python -m compileall -q src/ghost >/dev/null || true
.venv/bin/python -c "import ghost, torch; assert torch.__version__.startswith('2.13.0'), torch.__version__" 

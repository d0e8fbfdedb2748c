#!/usr/bin/env bash
# ensure-venv.sh makes sure sdks/python/.venv exists and holds exactly the
# pinned development requirements (requirements/dev.txt): code generation,
# mypy and pytest all run from it. It rebuilds the venv when dev.txt changed
# since it was made, and takes a lock so that buf's parallel plugins do not
# build it twice. Everything it says goes to stderr: buf reads the stdout of
# the commands that call it. Prints nothing and exits 0 when the venv is ready.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$here/.venv"
reqs="$here/requirements/dev.txt"
python="${MAXINE_PYTHON:-python3}"
want="$(sha256sum "$reqs" | cut -d' ' -f1)"
stamp="$venv/.maxine-dev-requirements"

ready() { [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; }
ready && exit 0

mkdir -p "$here/.tmp"
exec 9>"$here/.tmp/venv.lock"
flock 9
ready && exit 0
command -v "$python" >/dev/null || { echo "ensure-venv: $python not found: the Python SDK needs Python 3.11 or later" >&2; exit 1; }
"$python" - <<'PY' >&2 || exit 1
import sys
if sys.version_info < (3, 11):
    sys.exit(f"ensure-venv: the Python SDK needs Python 3.11 or later, {sys.executable} is {sys.version.split()[0]}")
PY
echo "ensure-venv: creating $venv from requirements/dev.txt" >&2
rm -rf "$venv"
"$python" -m venv "$venv" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$reqs" >&2
echo "$want" >"$stamp"

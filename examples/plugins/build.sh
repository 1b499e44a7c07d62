#!/usr/bin/env bash
# Builds the Python and JavaScript plugins (the examples and the test guests in those
# languages) into components, with their own toolchains at pinned versions:
#   examples/plugins/build.sh [OUT_DIR]      (default: target/polyglot-plugins)
# Python: componentize-py from PyPI, in a virtual environment under target/.
# JavaScript: componentize-js from npm (package-lock.json), called through its Node API.
# Needs python3 (3.10+) and node (18+) with npm. Does nothing when no source changed.
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$root/target/polyglot-plugins}
tools=$root/target/polyglot-toolchain
py_plugins=("$here/python/sms" "$here/python/crm" "$root/tests/guests/python-hostile")
js_plugins=("$here/js/slack" "$here/js/scoring" "$root/tests/guests/js-hostile")

for tool in python3 node npm; do
  command -v "$tool" >/dev/null || { echo "build.sh: $tool is needed to build the Python and JavaScript plugins" >&2; exit 1; }
done

# Skip when the sources, the contract and the pinned versions are what the last build saw.
stamp=$( (cd "$root" && find wit examples/plugins tests/guests/python-hostile tests/guests/js-hostile \
  \( -name node_modules -o -name __pycache__ \) -prune -o -type f -print | sort | xargs sha256sum) | sha256sum | cut -d' ' -f1)
if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp" ]; then
  exit 0
fi
mkdir -p "$out" "$tools"

echo "== Python plugins (componentize-py)"
if [ ! -x "$tools/venv/bin/componentize-py" ] || ! cmp -s "$here/python/requirements.txt" "$tools/venv/requirements.txt"; then
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/python/requirements.txt"
  cp "$here/python/requirements.txt" "$tools/venv/requirements.txt"
fi
for dir in "${py_plugins[@]}"; do
  name=$(basename "$dir")
  kind=$(sed -n 's/^kind *= *"\(.*\)"/\1/p' "$dir/plugin.toml")
  component=$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$dir/plugin.toml").wasm
  case "$kind" in
    action) world=parcours:examples/action-http@0.1.0 ;;
    data-source) world=parcours:examples/data-source-http@0.1.0 ;;
    functions) world=parcours:plugin/functions@0.1.0 ;;
    *) echo "$dir/plugin.toml: unknown kind $kind" >&2; exit 1 ;;
  esac
  mkdir -p "$out/$name"
  started=$(date +%s)
  # componentize-py writes __pycache__ beside the modules it reads: it reads copies.
  copy="$tools/src/$name"
  rm -rf "$copy" && mkdir -p "$copy"
  cp "$here"/python/lib/*.py "$dir"/*.py "$copy/"
  "$tools/venv/bin/componentize-py" --quiet -d "$root/wit" -d "$here/wit" -w "$world" \
    componentize -p "$copy" app -o "$out/$name/$component"
  cp "$dir/plugin.toml" "$out/$name/plugin.toml"
  echo "built $name: $(stat -c %s "$out/$name/$component") bytes in $(( $(date +%s) - started )) s"
done

echo "== JavaScript plugins (componentize-js)"
(cd "$here/js" && npm ci --silent --no-audit --no-fund)
node "$here/js/build.mjs" "$out" "${js_plugins[@]}"

echo "$stamp" > "$out/.stamp"

#!/usr/bin/env bash
# API fuzzing: schemathesis (PyPI, pinned in requirements.txt) against the OpenAPI
# document a fresh `parcours serve --examples` serves. Every generated request must get
# an answer that is not a 5xx and matches the document (status code, content type,
# body schema). Bounded: EXAMPLES cases per operation, a fixed seed.
#
#   tests/api/schemathesis.sh target/debug/parcours [PLUGIN_CACHE]
set -euo pipefail
binary=$1
plugin_cache=${2:-}
examples=${SCHEMATHESIS_EXAMPLES:-50}
seed=${SCHEMATHESIS_SEED:-1}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'kill "${engine:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"

args=(serve --examples --listen 127.0.0.1:0 --db "$work/api.db")
if [ -n "$plugin_cache" ]; then args+=(--plugin-cache "$plugin_cache"); fi
"$binary" "${args[@]}" 2> "$work/engine.log" &
engine=$!
base=
for _ in $(seq 1 600); do
  base=$(grep -o 'listening on http://[0-9.:]*' "$work/engine.log" | head -1 | sed 's/listening on //') || true
  if [ -n "$base" ]; then break; fi
  if ! kill -0 "$engine" 2>/dev/null; then cat "$work/engine.log"; echo "parcours exited before listening"; exit 1; fi
  sleep 0.5
done
if [ -z "$base" ]; then cat "$work/engine.log"; echo "parcours did not listen"; exit 1; fi
echo "engine at $base"

cd "$work"
# One worker: hypothesis describes its filters by parsing their source with `ast.parse`,
# which CPython 3.11 does not make safe across threads (`SystemError: AST constructor
# recursion depth mismatch` when two workers parse at once, as the paged list endpoints'
# query parameters first made them do).
set +e
"$work/venv/bin/st" run "$base/v1/openapi.json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples "$examples" --seed "$seed" --workers 1 \
  --phases examples,coverage,fuzzing --no-color
status=$?
set -e
if [ "$status" -ne 0 ]; then
  echo "== engine log (last 50 lines)"
  tail -50 "$work/engine.log"
fi
exit "$status"

#!/usr/bin/env bash
# OpenAPI-driven fuzzing of the HTTP API: schemathesis (from PyPI, pinned
# below, installed into a venv in the build folder) generates requests for every
# operation of /v1/openapi.json, valid and invalid, against the real
# `starling-server` binary (plain HTTP on a free loopback port, SQLite in a
# temporary data folder): once without credentials, once as a registered
# device. A response of 5xx, a status the document does not list for the
# operation, or a content type or body other than it documents fails the
# run; so does a server that died or logged a panic. About 75 s on two
# cores once built. (schemathesis leaves out the operation that serves the
# document itself, GET /v1/openapi.json.)
#
# API_FUZZ_EXAMPLES (default 150) bounds the cases per operation and phase;
# API_FUZZ_SEED (default 1) makes a run repeatable.
set -euo pipefail
cd "$(dirname "$0")/.."

schemathesis_version=4.32.5
examples="${API_FUZZ_EXAMPLES:-150}"
seed="${API_FUZZ_SEED:-1}"
build_dir="${CARGO_TARGET_DIR:-$PWD/target}"
[[ "$build_dir" == /* ]] || build_dir="$PWD/$build_dir"
venv="$build_dir/api-fuzz-venv"

if [[ ! -x "$venv/bin/st" ]] || [[ "$("$venv/bin/st" --version 2>/dev/null)" != *"$schemathesis_version"* ]]; then
  echo "== installing schemathesis $schemathesis_version"
  rm -rf "$venv"
  if ! python3 -m venv "$venv" 2>/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    rm -rf "$venv"
    python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$schemathesis_version"
fi

if ! command -v curl >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null
fi

# .ci/test names the server its test run has just built; run alone, this
# builds it.
if [[ -n "${STARLING_API_FUZZ_SERVER:-}" ]]; then
  server="$STARLING_API_FUZZ_SERVER"
else
  cargo build -p starling-server --bin starling-server --locked
  server="$build_dir/debug/starling-server"
fi
st="$venv/bin/st"

work=$(mktemp -d)
pid=""
cleanup() {
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
export STARLING_DATA_DIR="$work/data"
export STARLING_LISTEN="127.0.0.1:$port"
export STARLING_RELAY_UDP_LISTEN="127.0.0.1:0"
export STARLING_TLS_MODE=plain_http
export RUST_LOG=warn
# /metrics answers only this token (so the fuzzer meets its 401s).
STARLING_METRICS_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
export STARLING_METRICS_TOKEN
unset DATABASE_URL STARLING_CONFIG STARLING_OPEN_REGISTRATION

invite=$("$server" admin invite)
"$server" >"$work/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  curl -fsS "$base/healthz" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/server.log"; echo "the server did not start" >&2; exit 1; }
  sleep 0.1
done

# A device to fuzz as. Its identity key is a fixed valid one (the server
# checks only that it decodes and that its X25519 key is signed).
identity_key="CiADoQe/884Qvh1w3RjnS8CZZ+TWMJulDV8d3IZkElUxuBIgNYBy1jZYgNGu6jKa35EhODhR7SGijjt16WXQ0s0WYlQaQNHC4mADorjvP2riiKCdVA6nBFS1rinWUGpGI6zy8ZJSCVoxb2BfFtsOsaCsy/2eLc1pqViAElP1ZiYLOmYYLwM="
registered=$(curl -fsS -X POST "$base/v1/accounts" -H 'Content-Type: application/json' \
  -d "{\"username\":\"fuzzer\",\"invite_code\":\"$invite\",\"identity_key\":\"$identity_key\"}")
auth=$(python3 -c 'import json, sys; r = json.load(sys.stdin); print("Bearer %s:%s:%s" % (r["username"], r["device_id"], r["credential"]))' <<<"$registered")

run() {
  local name=$1
  shift
  echo "== schemathesis: $name (${SECONDS}s)"
  # From the temporary folder, where Hypothesis may leave its files.
  (cd "$work" && "$st" run "$base/v1/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --max-examples "$examples" --seed "$seed" --workers 2 \
    --generation-database none --request-timeout 10 --no-color "$@")
}

status=0
run unauthenticated || status=1
run authenticated -H "Authorization: $auth" || status=1

if ! kill -0 "$pid" 2>/dev/null; then
  echo "!! the server died during the fuzz run" >&2
  status=1
fi
if grep -n "panicked" "$work/server.log"; then
  echo "!! the server panicked" >&2
  status=1
fi
if (( status != 0 )); then
  echo "== server log (last 50 lines)"
  tail -n 50 "$work/server.log"
  echo "!! API fuzzing failed" >&2
  exit 1
fi
echo "== API fuzzing: no server error, no undocumented status or body, no panic (${SECONDS}s)"

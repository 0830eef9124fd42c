#!/usr/bin/env bash
# Fuzz smoke test: builds every cargo-fuzz target (starling-crypto's,
# decode_ws_frame for the server's WebSocket frame decoder, and
# decode_transparency for key transparency's) and runs each for
# ${FUZZ_SECONDS:-10} seconds, starting from seeds/<target>/ (and
# replaying regressions/<target>/ first). Exits non-zero if any target
# crashes, panics, leaks past the memory limit or hangs; the input is left
# in artifacts/<target>/.
#
# Works on the stable toolchain: `-s none` (no sanitizer) needs no nightly
# flag. `-a` keeps debug assertions and overflow checks on in every crate.
# New corpus entries go to a temporary folder (FUZZ_CORPUS=<dir> keeps them).
set -euo pipefail

FUZZ_DIR="$(cd "$(dirname "$0")" && pwd)"
cd "$FUZZ_DIR/.."   # cargo fuzz finds fuzz/ under the crate

seconds="${FUZZ_SECONDS:-10}"
flags=(-s none -a)

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

if [[ -n "${FUZZ_CORPUS:-}" ]]; then
  corpus_root="$FUZZ_CORPUS"
  mkdir -p "$corpus_root"
else
  corpus_root="$(mktemp -d)"
  trap 'rm -rf "$corpus_root"' EXIT
fi

echo "== build"
cargo fuzz build "${flags[@]}"

failed=()
for target in $(cargo fuzz list); do
  echo "== $target: ${seconds}s"
  mkdir -p "$corpus_root/$target"
  dirs=("$corpus_root/$target" "fuzz/seeds/$target")
  if [[ -d "fuzz/regressions/$target" ]]; then
    dirs+=("fuzz/regressions/$target")
  fi
  log="$corpus_root/$target.log"
  status=0
  cargo fuzz run "${flags[@]}" "$target" "${dirs[@]}" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 >"$log" 2>&1 || status=$?
  grep -E '^#[0-9]+[[:space:]]+DONE' "$log" || true
  if (( status != 0 )); then
    tail -n 60 "$log"
    echo "!! $target failed (exit $status): input in crypto/fuzz/artifacts/$target/"
    failed+=("$target")
  fi
done

if (( ${#failed[@]} )); then
  echo "== FAILED: ${failed[*]}"
  exit 1
fi
echo "== all fuzz targets ran ${seconds}s each without a crash"

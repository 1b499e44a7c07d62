#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (FUZZ_SECONDS each, default 60),
# starting from the seed corpus. A crash fails the run; its input is copied to
# tests/fuzz/regressions/<target>/ (and printed in base64) so that, once fixed, it is
# kept as a regression input (tests/all/fuzz_inputs.rs replays them in `cargo test`).
#
# Built without a sanitizer (-s none): the engine is safe Rust, so what fuzzing finds is
# a panic, an abort, a hang or a blow-up, which libFuzzer catches as is; debug assertions
# and overflow checks are on (-a). The build is kept in FUZZ_TARGET_DIR (default under
# ~/.cargo, which CI may keep between runs).
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${FUZZ_SECONDS:-60}
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-$HOME/.cargo/parcours-fuzz-target}
# cargo fuzz passes -Z flags; the pinned stable toolchain accepts them this way.
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version 2>/dev/null | grep -q '0.13.2'; then
  cargo install cargo-fuzz --locked --version 0.13.2
fi

targets=(journey_definition expression event_decoding)
cargo fuzz build --fuzz-dir tests/fuzz -O -a -s none
status=0
for t in "${targets[@]}"; do
  echo "== fuzz $t for ${seconds}s"
  corpus=$(mktemp -d)
  artifacts=$(mktemp -d)
  if ! cargo fuzz run --fuzz-dir tests/fuzz -O -a -s none "$t" "$corpus" "tests/fuzz/corpus/$t" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -artifact_prefix="$artifacts/" \
      -print_final_stats=1; then
    status=1
    for crash in "$artifacts"/*; do
      [ -f "$crash" ] || continue
      name=$(basename "$crash")
      cp "$crash" "tests/fuzz/regressions/$t/$name"
      echo "== $t crashed on tests/fuzz/regressions/$t/$name (base64 below)"
      base64 "$crash"
    done
  fi
  rm -rf "$corpus" "$artifacts"
done
exit "$status"

#!/usr/bin/env bash
# Fails when the built wasm module is more than 5 % over the budget committed in
# crates/wasm/size-budget.txt ("raw <bytes>" and "gzip <bytes>" lines).
# Usage: scripts/check_wasm_size.sh crates/wasm/pkg/swarmbus_bg.wasm
set -euo pipefail
wasm="$1"
budget_file="crates/wasm/size-budget.txt"
raw=$(stat -c %s "$wasm")
gz=$(gzip -9 -c "$wasm" | wc -c)
budget_raw=$(awk '$1 == "raw" { print $2 }' "$budget_file")
budget_gz=$(awk '$1 == "gzip" { print $2 }' "$budget_file")
echo "swarmbus_bg.wasm: $raw bytes raw (budget $budget_raw), $gz bytes gzip (budget $budget_gz)"
status=0
for pair in "raw:$raw:$budget_raw" "gzip:$gz:$budget_gz"; do
    IFS=: read -r kind size budget <<<"$pair"
    if [ $((size * 100)) -gt $((budget * 105)) ]; then
        echo "wasm size over budget: $kind $size bytes is more than 5 % over $budget ($budget_file)" >&2
        status=1
    fi
done
exit "$status"

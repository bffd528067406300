#!/usr/bin/env bash
# scripts/run_group.sh SECONDS CMD ARGS...
# Runs CMD in a process group of its own, ends it after SECONDS (TERM, then KILL
# 10 s later; exit status 124 like timeout(1)), and afterwards kills whatever is
# left in that group (a browser or driver CMD started), by group id, never by name.
set -euo pipefail
seconds="${1:?usage: scripts/run_group.sh SECONDS CMD ARGS...}"
shift
# In a script without job control a background job is not a group leader, so
# setsid does not fork: $! is the new session's (and process group's) id.
setsid timeout --foreground -k 10 "$seconds" "$@" &
group=$!
trap 'kill -KILL -- "-$group" 2>/dev/null || true' EXIT
status=0
wait "$group" || status=$?
exit "$status"

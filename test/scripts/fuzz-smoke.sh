#!/usr/bin/env bash
# fuzz-smoke.sh [FUZZTIME] — run every Fuzz target of the module for a short
# while (default 3s each). A crash fails the run and leaves its input under the
# package's testdata/fuzz/ for committing.
#
# On a loaded machine Go's fuzzing coordinator can give up on a worker with
# "context deadline exceeded" although no input failed (no "Failing input
# written" line). Such a run is retried once; a real crasher is never retried.
set -euo pipefail
fuzztime=${1:-3s}
cd "$(git rev-parse --show-toplevel)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
n=0
fuzz_one() { go test -run '^$' -fuzz "^${2}\$" -fuzztime "$fuzztime" "$1" >"$log" 2>&1; }
while read -r dir; do
	pkg="./${dir}"
	for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go | sed 's/^func //' | sort -u); do
		echo "fuzz-smoke: $pkg $f ($fuzztime)"
		if ! fuzz_one "$pkg" "$f"; then
			if grep -q 'Failing input written' "$log" || ! grep -q 'context deadline exceeded' "$log"; then
				cat "$log"
				exit 1
			fi
			echo "fuzz-smoke: $pkg $f: coordinator timeout without a failing input; retrying once"
			fuzz_one "$pkg" "$f" || { cat "$log"; exit 1; }
		fi
		n=$((n + 1))
	done
done < <(grep -l '^func Fuzz' $(git ls-files --cached --others --exclude-standard '*_test.go') 2>/dev/null | xargs -r -n1 dirname | sort -u)
echo "fuzz-smoke: $n targets ok"

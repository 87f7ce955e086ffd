#!/usr/bin/env bash
# Runs every fuzz target of the module for FUZZTIME each (default 30s):
# `make fuzz`. `go test` (make test) runs only their seed corpora; this
# explores. New crashers are written to <package>/testdata/fuzz/<Target>/
# by go test: commit them, with the fix, as seeds.
#
#   FUZZTIME=2m make fuzz            longer
#   FUZZ='FuzzManifest|FuzzAPI' make fuzz   only targets matching the regexp
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
fuzztime=${FUZZTIME:-30s}
only=${FUZZ:-.}
status=0
failed=()
# Every package directory with a Fuzz target in its tests, and the targets.
while IFS= read -r dir; do
	for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go | sed 's/^func //' | sort -u); do
		[[ $target =~ $only ]] || continue
		echo "== $dir $target ($fuzztime)"
		if ! go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "./$dir"; then
			status=1
			failed+=("$dir $target")
		fi
	done
done < <(grep -rl --include='*_test.go' '^func Fuzz' . | grep -v '^./.cache/' | xargs -n1 dirname | sed 's|^\./||' | sort -u)
if ((status)); then
	echo "fuzz targets that failed:"
	printf '  %s\n' "${failed[@]}"
fi
exit $status

#!/bin/sh
# The full run's baseline (results/fashion-mnist, what `drsch reproduce` compares with) is made
# again whenever the quick run's (results/fashion-mnist-quick, the one CI gates) is: a change that
# makes the quick run's models differ (kernels that sum in another order, other libraries) makes
# the full run's differ too, and no CI step runs the full one. It went stale once: made at
# ce397d7, still the baseline after the quick one had been made again for seven such changes,
# so that `drsch reproduce` printed "NOT reproduced" (18 of 191 metrics beyond 0.01).
# Checks that FULL's report names the commit of QUICK's report or a later one (git history).
# Exit 77 (skipped) without the history of those commits (a shallow clone, a tarball).
# usage: check_baselines_in_step.sh SOURCE_DIR FULL_REPORT QUICK_REPORT
set -eu
src=$1 full=$2 quick=$3
commit_of() { sed -n 's/.*"git_commit":[[:space:]]*"\([0-9a-f]*\).*/\1/p' "$1" | head -1; }
fc=$(commit_of "$src/$full")
qc=$(commit_of "$src/$quick")
if [ -z "$fc" ] || [ -z "$qc" ]; then
    echo "check_baselines_in_step: no git_commit in $full or $quick" >&2
    exit 1
fi
for c in "$fc" "$qc"; do
    if ! git -C "$src" cat-file -e "$c^{commit}" 2>/dev/null; then
        echo "check_baselines_in_step: skipped: commit $c is not in this checkout's history"
        exit 77
    fi
done
if ! git -C "$src" merge-base --is-ancestor "$qc" "$fc"; then
    echo "check_baselines_in_step: $full was made at $fc, before $quick ($qc): make it again" \
        "(drsch reproduce --threads 2 --out $(dirname "$full"), on the machine and libraries" \
        "$quick names) and commit it" >&2
    exit 1
fi
echo "check_baselines_in_step: $full at $fc, $quick at $qc: in step"

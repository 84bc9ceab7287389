#!/bin/sh
# Baselines that must be made again together are in step: NEWER's report names the commit of
# OLDER's report or a later one (git history). The pairs (CMakeLists.txt):
#  - the full run's baseline (results/fashion-mnist, what `drsch reproduce` compares with) and the
#    quick run's (results/fashion-mnist-quick, the one CI gates): a change that makes the quick
#    run's models differ (kernels that sum in another order, other libraries) makes the full
#    run's differ too, and no CI step runs the full one. It went stale once: made at ce397d7,
#    still the baseline after the quick one had been made again for seven such changes, so that
#    `drsch reproduce` printed "NOT reproduced" (18 of 191 metrics beyond 0.01);
#  - the same pair of the AVX2 kernels (results/fashion-mnist-avx2, -quick-avx2);
#  - the AVX2 quick baseline and the AVX-512 one: a change that made the AVX-512 models differ is
#    taken to change the AVX2 ones too. They went stale once: the AVX2 quick baseline, made at
#    8215747, was not made again for the seven kernel changes that followed, and a runner with
#    AVX2 alone would have failed CI's accuracy gate (11 regressions at f116795).
# Exit 77 (skipped) without the history of those commits (a shallow clone, a tarball).
# usage: check_baselines_in_step.sh SOURCE_DIR NEWER_REPORT OLDER_REPORT
set -eu
src=$1 newer=$2 older=$3
commit_of() { sed -n 's/.*"git_commit":[[:space:]]*"\([0-9a-f]*\).*/\1/p' "$1" | head -1; }
nc=$(commit_of "$src/$newer")
oc=$(commit_of "$src/$older")
if [ -z "$nc" ] || [ -z "$oc" ]; then
    echo "check_baselines_in_step: no git_commit in $newer or $older" >&2
    exit 1
fi
for c in "$nc" "$oc"; do
    if ! git -C "$src" cat-file -e "$c^{commit}" 2>/dev/null; then
        echo "check_baselines_in_step: skipped: commit $c is not in this checkout's history"
        exit 77
    fi
done
if ! git -C "$src" merge-base --is-ancestor "$oc" "$nc"; then
    echo "check_baselines_in_step: $newer was made at $nc, before $older ($oc): make it again" \
        "(the command, kernels and libraries named in $(dirname "$newer")/table.md) and" \
        "commit it" >&2
    exit 1
fi
echo "check_baselines_in_step: $newer at $nc, $older at $oc: in step"

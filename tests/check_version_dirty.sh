#!/bin/sh
# harness/version.cmake names the commit built and adds "-dirty" when tracked files differ from
# it, except files under results/ (what the benchmarks write). Checked in a scratch repository:
# a clean tree, a changed result, a changed source.
# usage: check_version_dirty.sh CMAKE VERSION_CMAKE VERSION_C_IN
set -eu
cmake=$1 script=$2 template=$3
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
git -C "$dir" init -q
mkdir "$dir/results" "$dir/core"
echo a >"$dir/results/table.md"
echo b >"$dir/core/x.c"
git -C "$dir" add -A
git -C "$dir" -c user.name=t -c user.email=t@t commit -q -m one
commit=$(git -C "$dir" rev-parse --short=12 HEAD)
# expect WANT: version.cmake's commit string for the tree as it is now
expect() {
    "$cmake" -DSRC="$template" -DDST="$dir/version.c" -DSOURCE_DIR="$dir" -DPROJECT_VERSION=0 \
        -DCMAKE_BUILD_TYPE=Release -P "$script"
    got=$(sed -n 's/.*drsch_git_commit(void) { return "\(.*\)"; }/\1/p' "$dir/version.c")
    if [ "$got" != "$1" ]; then
        echo "check_version_dirty: $2: commit '$got', expected '$1'" >&2
        exit 1
    fi
    echo "check_version_dirty: $2: $got"
}
expect "$commit" "a clean tree"
echo changed >>"$dir/results/table.md"
expect "$commit" "a result changed"
echo changed >>"$dir/core/x.c"
expect "$commit-dirty" "a source changed"

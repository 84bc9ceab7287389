#!/bin/sh
# make_cuhk03 (tests/make_cuhk03.c) writes a file drsch reads back with the shape it says: at
# SCALE 20, 42 / 22 / 3 / 2 / 2 persons, 666 images (8 to 10 each), 20 testsets of 5 identities.
# usage: check_make_cuhk03.sh MAKE_CUHK03 DRSCH
set -eu
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$1" "$dir/cuhk-03.mat" 20
"$2" data info "cuhk03:$dir/cuhk-03.mat" >"$dir/info" 2>&1 || { cat "$dir/info" >&2; exit 1; }
cat "$dir/info"
for want in "labels:    identity (re-id), 71 identities" \
            "per id:    71 identities with images, 8 to 10 images each" \
            "persons per pair: 42 22 3 2 2" "testsets:  20 of 5 identities" \
            "images:    666 (uint8 3 x 160 x 60"; do
    grep -qF "$want" "$dir/info" || { echo "check_make_cuhk03: no line with '$want'" >&2; exit 1; }
done
if "$1" "$dir/x.mat" 0 2>/dev/null || "$1" "$dir/x.mat" 5x 2>/dev/null; then
    echo "check_make_cuhk03: SCALE 0 or 5x was taken" >&2
    exit 1
fi
echo "check_make_cuhk03: ok"

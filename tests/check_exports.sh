#!/bin/sh
# The interface of libdrsch.so is exactly its installed headers: every function they declare with
# DRSCH_API is exported, and nothing else is (the library is built with -fvisibility=hidden).
# usage: check_exports.sh LIBRARY HEADER...
set -eu
lib=$1
shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Defined dynamic symbols; names starting with '.' are OpenMP's named critical sections.
nm -D --defined-only "$lib" | awk 'NF == 3 && $3 !~ /^\./ {print $3}' | sort -u >"$tmp/exported"
sed -n 's/^DRSCH_API[^(]*[ *]\([A-Za-z_][A-Za-z_0-9]*\)(.*/\1/p' "$@" | sort -u >"$tmp/declared"
status=0
if [ ! -s "$tmp/declared" ]; then
    echo "check_exports: no DRSCH_API declaration found in: $*" >&2
    exit 1
fi
extra=$(comm -23 "$tmp/exported" "$tmp/declared")
missing=$(comm -13 "$tmp/exported" "$tmp/declared")
if [ -n "$extra" ]; then
    echo "check_exports: $lib exports symbols no installed header declares:" >&2
    echo "$extra" | sed 's/^/  /' >&2
    status=1
fi
if [ -n "$missing" ]; then
    echo "check_exports: declared in the installed headers but not exported by $lib:" >&2
    echo "$missing" | sed 's/^/  /' >&2
    status=1
fi
[ $status -ne 0 ] || echo "check_exports: $(wc -l <"$tmp/exported") functions, as the headers declare"
exit $status

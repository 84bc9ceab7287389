#!/bin/sh
# The build tree's drsch, libdrsch.so and drsch's modules have no empty entry in their RUNPATH or
# RPATH: the loader reads an empty entry as the current directory, and would load any library
# of that name found where drsch is run.
# usage: check_runpath.sh FILE...
set -eu
status=0
for f in "$@"; do
    paths=$(readelf -d "$f" | sed -n 's/.*(\(RUNPATH\|RPATH\)).*\[\(.*\)\]$/\2/p')
    for p in $paths; do
        case ":$p:" in
        *::*)
            echo "check_runpath: $f: an empty entry in '$p' (the current directory)" >&2
            status=1
            ;;
        esac
    done
    echo "check_runpath: $f: ${paths:-no RUNPATH}"
done
exit $status

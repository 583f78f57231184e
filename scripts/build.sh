#!/usr/bin/env bash
# Builds one service binary. This is THE build command: the Makefile and the
# Dockerfile both call this script, so a local build and an image build produce
# the same static binary.
#
# usage: scripts/build.sh <service> <outdir>
#   <service>  a directory under services/ (command-api, query-api,
#              projector-orders, projector-stats, search-indexer)
#   <outdir>   where to write the binary (created if missing); a relative path
#              is taken relative to the caller's working directory
#
# CGO_ENABLED=0  : a fully static binary, so it runs on distroless/static or scratch
# -trimpath      : no local file-system paths in the binary (reproducible builds)
# -ldflags -s -w : strip the symbol table and DWARF (smaller image)
set -euo pipefail

if [[ $# -ne 2 ]]; then
	echo "usage: $0 <service> <outdir>" >&2
	exit 2
fi
service=$1
outdir=$2

# Resolve outdir against the caller's directory before moving to the repo root.
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ ! -d "services/$service" ]]; then
	echo "build.sh: unknown service '$service' (no directory services/$service)" >&2
	exit 2
fi

CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$outdir/$service" "./services/$service"

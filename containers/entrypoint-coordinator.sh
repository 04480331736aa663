#!/bin/sh
# The coordinator container's entrypoint, also run as it is by CI and tests.
# Everything comes from the environment, so one image serves every sweep:
#   IMGSWEEP_MANIFEST   manifest.json (required), e.g. /srv/testdata/manifest.json
#   IMGSWEEP_VERSIONS   versions to sweep, comma-separated (or IMGSWEEP_BINARIES: sweep that
#                       tree's versions)
#   IMGSWEEP_LISTEN     ZeroMQ endpoint (default tcp://0.0.0.0:5555)
#   IMGSWEEP_OUT        the tree (default /var/lib/imgsweep/expected-outputs)
#   IMGSWEEP_DB         the store (default /var/lib/imgsweep/imgsweep.db)
#   IMGSWEEP_KEYS       a folder with coordinator.key and workers/*.pub (mounted secrets):
#                       CURVE; without it IMGSWEEP_INSECURE=1 is needed off loopback
#   IMGSWEEP_METRICS    HOST:PORT for Prometheus metrics (optional)
#   IMGSWEEP_BIN        the imgsweep binary (default: imgsweep on PATH)
# Arguments are passed on to `imgsweep coordinator` (e.g. --timeout 60).
set -eu
: "${IMGSWEEP_MANIFEST:?set IMGSWEEP_MANIFEST to the manifest.json}"
bin=${IMGSWEEP_BIN:-imgsweep}
set -- --listen "${IMGSWEEP_LISTEN:-tcp://0.0.0.0:5555}" \
  --manifest "$IMGSWEEP_MANIFEST" \
  --out "${IMGSWEEP_OUT:-/var/lib/imgsweep/expected-outputs}" \
  --db "${IMGSWEEP_DB:-/var/lib/imgsweep/imgsweep.db}" "$@"
if [ -n "${IMGSWEEP_VERSIONS:-}" ]; then
  set -- --versions "$IMGSWEEP_VERSIONS" "$@"
elif [ -n "${IMGSWEEP_BINARIES:-}" ]; then
  set -- --binaries "$IMGSWEEP_BINARIES" "$@"
else
  echo "entrypoint-coordinator: set IMGSWEEP_VERSIONS or IMGSWEEP_BINARIES" >&2
  exit 2
fi
if [ -n "${IMGSWEEP_KEYS:-}" ]; then
  set -- --curve-secret "$IMGSWEEP_KEYS/coordinator.key" --allow-workers "$IMGSWEEP_KEYS/workers" "$@"
elif [ "${IMGSWEEP_INSECURE:-0}" = 1 ]; then
  set -- --insecure "$@"
fi
if [ -n "${IMGSWEEP_METRICS:-}" ]; then set -- --metrics "$IMGSWEEP_METRICS" "$@"; fi
exec "$bin" coordinator "$@"

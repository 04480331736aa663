#!/bin/sh
# The worker container's entrypoint, also run as it is by CI and tests.
#   IMGSWEEP_CONNECT    the coordinator, tcp://HOST:PORT (required)
#   IMGSWEEP_BINARIES   qemu-img binaries tree (default /srv/qemu-img-binaries, a volume)
#   IMGSWEEP_TESTDATA   testdata checkout (default /srv/testdata, a volume)
#   IMGSWEEP_NAME       name in the fleet (default: the host name, unique per pod/container)
#   IMGSWEEP_SLOTS      cells at once (default: cores)
#   IMGSWEEP_KEY        this worker's key file (NAME.key, a mounted secret) and
#   IMGSWEEP_COORDINATOR_KEY  the coordinator's .pub: CURVE; without it
#                       IMGSWEEP_INSECURE=1 is needed for a coordinator off loopback
#   IMGSWEEP_STAGE_DIR  where the dense copy of the testdata is staged (default
#                       ~/.cache/imgsweep/staged; an emptyDir or volume keeps it between runs)
#   IMGSWEEP_IMAGE_LAYOUT  dense (default) or as-is
#   IMGSWEEP_BIN        the imgsweep binary (default: imgsweep on PATH)
# Arguments are passed on to `imgsweep worker`.
set -eu
: "${IMGSWEEP_CONNECT:?set IMGSWEEP_CONNECT to the coordinator, tcp://HOST:PORT}"
bin=${IMGSWEEP_BIN:-imgsweep}
set -- --connect "$IMGSWEEP_CONNECT" \
  --binaries "${IMGSWEEP_BINARIES:-/srv/qemu-img-binaries}" \
  --testdata "${IMGSWEEP_TESTDATA:-/srv/testdata}" \
  --name "${IMGSWEEP_NAME:-$(hostname)}" "$@"
if [ -n "${IMGSWEEP_SLOTS:-}" ]; then set -- --slots "$IMGSWEEP_SLOTS" "$@"; fi
if [ -n "${IMGSWEEP_STAGE_DIR:-}" ]; then set -- --stage-dir "$IMGSWEEP_STAGE_DIR" "$@"; fi
if [ -n "${IMGSWEEP_IMAGE_LAYOUT:-}" ]; then set -- --image-layout "$IMGSWEEP_IMAGE_LAYOUT" "$@"; fi
if [ -n "${IMGSWEEP_KEY:-}" ]; then
  : "${IMGSWEEP_COORDINATOR_KEY:?IMGSWEEP_KEY needs IMGSWEEP_COORDINATOR_KEY (its .pub)}"
  set -- --curve-secret "$IMGSWEEP_KEY" --coordinator-key "$IMGSWEEP_COORDINATOR_KEY" "$@"
elif [ "${IMGSWEEP_INSECURE:-0}" = 1 ]; then
  set -- --insecure "$@"
fi
exec "$bin" worker "$@"

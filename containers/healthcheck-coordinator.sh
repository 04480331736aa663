#!/bin/sh
# The coordinator container's healthcheck: healthy while the coordinator
# answers `imgsweep status` on its own port, over CURVE with its own key when
# it has one. Reads the entrypoint's environment (IMGSWEEP_LISTEN, IMGSWEEP_KEYS).
set -eu
listen=${IMGSWEEP_LISTEN:-tcp://0.0.0.0:5555}
port=${listen##*:}
set -- status --connect "tcp://127.0.0.1:$port"
if [ -n "${IMGSWEEP_KEYS:-}" ]; then
  set -- "$@" --curve-secret "$IMGSWEEP_KEYS/coordinator.key" \
    --coordinator-key "$IMGSWEEP_KEYS/coordinator.pub"
fi
exec "${IMGSWEEP_BIN:-imgsweep}" --quiet "$@" >/dev/null

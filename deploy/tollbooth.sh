#!/bin/sh
# The image's `tollbooth`: runs the binary as the unprivileged user `tollbooth`. Fly mounts
# volumes owned by root, so when started as root (the machine's start, `fly ssh console -C
# "tollbooth …"`), the data folder is given to that user first, then every privilege of root
# is dropped; files the CLI creates are then the server's too.
set -eu
binary=/usr/local/lib/tollbooth/tollbooth
data=${TOLLBOOTH_DATA_DIR:-/data}
if [ "$(id -u)" = 0 ]; then
  chown -R tollbooth:tollbooth "$data"
  exec setpriv --reuid=tollbooth --regid=tollbooth --init-groups \
    --inh-caps=-all --bounding-set=-all -- "$binary" "$@"
fi
exec "$binary" "$@"

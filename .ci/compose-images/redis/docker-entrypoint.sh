#!/usr/bin/env bash
# The official redis image's entrypoint contract, for the stand-in:
# - `docker run IMAGE --flag` and `docker run IMAGE file.conf` mean `redis-server ...`;
# - started as root, it owns /data (the working directory: AOF and RDB files) to redis and runs
#   as redis (gosu);
# - without a configuration file, protected mode is off (the container's network is the
#   boundary), as in the official image; Debian's /etc/redis/redis.conf is not read.
set -Eeuo pipefail

if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then set -- redis-server "$@"; fi

if [ "$1" = 'redis-server' ] && [ "$(id -u)" = '0' ]; then
    find . \! -user redis -exec chown redis '{}' +
    exec gosu redis "${BASH_SOURCE[0]}" "$@"
fi

if [ "$1" = 'redis-server' ]; then
    configuration=
    if [ -f "${2:-}" ] && [ "${2%.conf}" != "${2:-}" ]; then configuration=$2; fi
    if [ -z "$configuration" ]; then
        # Flags after the command override these.
        set -- redis-server --protected-mode no --bind '* -::*' "${@:2}"
    fi
fi

exec "$@"

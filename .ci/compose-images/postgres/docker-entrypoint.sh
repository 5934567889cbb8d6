#!/usr/bin/env bash
# The official postgres image's entrypoint contract, for the stand-in:
# - `docker run IMAGE -c key=value` means `postgres -c key=value`;
# - started as root, it owns the data directory to postgres and runs as postgres (gosu);
# - on an empty PGDATA: initdb with POSTGRES_USER (default postgres) and POSTGRES_PASSWORD (required
#   unless POSTGRES_HOST_AUTH_METHOD=trust), POSTGRES_INITDB_ARGS, creates POSTGRES_DB (default the
#   user's name), runs /docker-entrypoint-initdb.d/*.sh and *.sql on a server that listens on the
#   socket only, then stops it; local connections trust, others POSTGRES_HOST_AUTH_METHOD
#   (scram-sha-256), and the server listens on every address.
set -Eeuo pipefail

if [ "${1:0:1}" = '-' ]; then set -- postgres "$@"; fi

if [ "$1" = 'postgres' ] && [ "$(id -u)" = '0' ]; then
    mkdir -p "$PGDATA"
    chown postgres:postgres "$PGDATA"
    chmod 700 "$PGDATA"
    exec gosu postgres "${BASH_SOURCE[0]}" "$@"
fi

if [ "$1" = 'postgres' ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
    user=${POSTGRES_USER:-postgres}
    database=${POSTGRES_DB:-$user}
    auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
    if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
        echo "error: database is uninitialized and superuser password is not specified." >&2
        echo "       Set POSTGRES_PASSWORD (or POSTGRES_HOST_AUTH_METHOD=trust)." >&2
        exit 1
    fi
    # shellcheck disable=SC2086
    initdb --username="$user" --pwfile=<(printf '%s\n' "${POSTGRES_PASSWORD:-}") -E UTF8 --locale=C.UTF-8 \
        ${POSTGRES_INITDB_ARGS:-} >/dev/null
    printf '\nhost all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"
    printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start >/dev/null
    export PGUSER=$user PGPASSWORD=${POSTGRES_PASSWORD:-}
    if [ "$database" != postgres ]; then
        psql -v ON_ERROR_STOP=1 --no-psqlrc -d postgres -q -c "CREATE DATABASE \"$database\""
    fi
    for file in /docker-entrypoint-initdb.d/*; do
        case "$file" in
            *.sh) echo "running $file"; . "$file" ;;
            *.sql) echo "running $file"; psql -v ON_ERROR_STOP=1 --no-psqlrc -d "$database" -f "$file" ;;
            *) ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    unset PGPASSWORD
    echo "PostgreSQL init process complete; ready for start up."
fi

exec "$@"

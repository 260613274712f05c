#!/bin/sh
# Entrypoint of ops-test/postgres:15.
#
# First start: initdb into $PGDATA (scram-sha-256 for host connections, trust for local
# sockets), superuser $POSTGRES_USER (default postgres) with password $POSTGRES_PASSWORD
# (default postgres), database $POSTGRES_DB (default: the user's name) created in single-user
# mode. No temporary server is started, so "database system is ready to accept connections"
# is logged exactly once per container start, on stderr, by the real server.
#
# Arguments starting with "-" are passed to postgres (e.g. `-c fsync=off`); any other command
# is executed as is.
set -eu

PGDATA="${PGDATA:-/var/lib/postgresql/data}"
export PGDATA

if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ]; then
    exec "$@"
fi

if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 0700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    user="${POSTGRES_USER:-postgres}"
    password="${POSTGRES_PASSWORD:-postgres}"
    db="${POSTGRES_DB:-$user}"

    pwfile="$(mktemp)"
    printf '%s\n' "$password" > "$pwfile"
    initdb --pgdata="$PGDATA" --username="$user" --pwfile="$pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 \
        --encoding=UTF8 --locale=C.UTF-8 >&2
    rm -f "$pwfile"

    cat >> "$PGDATA/pg_hba.conf" <<'HBA'

# ops-test: password (scram-sha-256) access from anywhere
host all all 0.0.0.0/0 scram-sha-256
host all all ::/0 scram-sha-256
HBA
    cat >> "$PGDATA/postgresql.conf" <<'CONF'

# ops-test
listen_addresses = '*'
shared_preload_libraries = 'pg_stat_statements'
password_encryption = 'scram-sha-256'
CONF

    if [ "$db" != postgres ]; then
        # Quote the identifier: double any double quote.
        ident="$(printf '%s' "$db" | sed 's/"/""/g')"
        printf 'CREATE DATABASE "%s";\n' "$ident" \
            | postgres --single -D "$PGDATA" postgres >/dev/null
    fi
    echo "entrypoint: initialized $PGDATA (user $user, database $db)" >&2
fi

exec postgres -D "$PGDATA" "$@"

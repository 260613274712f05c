#!/bin/sh
# Entrypoint of ops-test/redis:7: an in-memory redis-server listening on 0.0.0.0:6379 with no
# persistence; `--requirepass "$REDIS_PASSWORD"` when REDIS_PASSWORD is set and non-empty.
# Extra arguments are appended to redis-server's. The argument list is built with `set --`,
# never by interpolating into a shell string. Logs go to stdout; the ready line is
# "Ready to accept connections" (Redis 7.0; 7.2+ would append " tcp").
set -eu

set -- redis-server --bind 0.0.0.0 --protected-mode no --save '' --appendonly no "$@"
if [ -n "${REDIS_PASSWORD:-}" ]; then
    set -- "$@" --requirepass "$REDIS_PASSWORD"
fi

if [ "$(id -u)" = 0 ]; then
    exec setpriv --reuid=redis --regid=redis --init-groups "$@"
fi
exec "$@"

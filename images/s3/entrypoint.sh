#!/bin/sh
# Entrypoint of ops-test/s3:latest: s3s-fs on 0.0.0.0:9000 serving /data, with the credentials
# from S3_ACCESS_KEY / S3_SECRET_KEY (defaults opsaccess / opssecret1234). Extra arguments (e.g.
# `--domain localhost`) are passed to s3s-fs. Ready line, on stdout:
# "... INFO s3s_fs: server is running at http://0.0.0.0:9000".
set -eu

mkdir -p /data
exec s3s-fs --host 0.0.0.0 --port 9000 \
    --access-key "${S3_ACCESS_KEY:-opsaccess}" \
    --secret-key "${S3_SECRET_KEY:-opssecret1234}" \
    "$@" /data

#!/bin/sh
# htgate in hosting mode for ../shared/bench: an htgate.toml with one site
# on the bench's document root, its access log on and the admin listener
# (/metrics) on, as a host runs it. Use it as the bench's server template:
#
#   ../shared/bench/run.sh --server "htgate-hosting=$PWD/scripts/bench-hosting.sh \
#       $PWD/target/release/htgate {root} {http} {https} {cert} {key} {rundir}"
#
# nginx in the same run keeps `access_log off`, so the access log counts
# against htgate (issue 20).
set -eu
if [ "$#" -ne 7 ]; then
  echo "usage: $0 HTGATE ROOT HTTP_ADDR HTTPS_ADDR CERT KEY RUNDIR" >&2
  exit 2
fi
bin=$1 root=$2 http=$3 https=$4 cert=$5 key=$6 rundir=$7
cat >"$rundir/htgate.toml" <<TOML
access_log = "$rundir/access.log"
error_log = "$rundir/error.log"
log_level = "warn"

[admin]
listen = "127.0.0.1:0"

[[listen]]
address = "$http"

[[listen]]
address = "$https"
tls = true

[default_certificate]
cert = "$cert"
key = "$key"

[[site]]
name = "bench"
domains = ["localhost", "127.0.0.1", "www.example.com"]
root = "$root"
TOML
exec "$bin" serve --config "$rundir/htgate.toml"

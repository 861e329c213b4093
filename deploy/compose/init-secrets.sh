#!/bin/sh
# Makes the secrets compose.yaml mounts: random passwords, the files each
# program reads them from, and an API key. Run once before the first
# `docker compose up`; files that exist are kept, so running it again
# changes nothing. The directory is readable by its owner only; the files in
# it are mounted into the containers, whose users differ.
#
#   deploy/compose/init-secrets.sh [DIR]     (default: secrets/ beside this script)
set -eu
dir=${1:-$(dirname "$0")/secrets}
umask 077
mkdir -p "$dir"
chmod 700 "$dir"

random() { od -An -N20 -tx1 /dev/urandom | tr -d ' \n'; }

# put NAME CONTENT: writes a secret file unless it exists, with no newline
# after a lone value (some programs would take it as part of the password).
put() {
  if [ -e "$dir/$1" ]; then
    echo "kept    $dir/$1"
    return
  fi
  case $2 in
  *"
"*) printf '%s\n' "$2" >"$dir/$1" ;;
  *) printf '%s' "$2" >"$dir/$1" ;;
  esac
  chmod 644 "$dir/$1"
  echo "created $dir/$1"
}

# Passwords first: the files that repeat them below read them back.
put postgres_password "$(random)"
put minio_root_user k2-admin
put minio_root_password "$(random)"
put grafana_admin_password "$(random)"
pg=$(cat "$dir/postgres_password")
minio_user=$(cat "$dir/minio_root_user")
minio_pass=$(cat "$dir/minio_root_password")

# K2 reads the catalog's password from a PostgreSQL password file
# (PGPASSFILE), S3 credentials from an AWS credentials file, and its API
# keys from a settings file (K2_CONFIG).
put k2_pgpass "postgres:5432:k2:k2:$pg"
put k2_aws_credentials "[default]
aws_access_key_id = $minio_user
aws_secret_access_key = $minio_pass"
put k2_settings.yaml "# K2 settings that are secrets (docs/operations/configuration.md).
api-keys:
  - ops:$(random)"

echo "API key for the REST API (X-API-Key): see api-keys in $dir/k2_settings.yaml"

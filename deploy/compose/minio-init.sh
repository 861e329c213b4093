#!/bin/sh
# Creates the warehouse's bucket ($BUCKET) on the compose file's MinIO, if
# it is missing, then exits. The root credentials go from the secret files
# into mc's environment (MC_HOST_<alias>), never onto a command line.
set -eu
user=$(cat /run/secrets/minio_root_user)
pass=$(cat /run/secrets/minio_root_password)
export MC_HOST_k2="http://${user}:${pass}@minio:9000"
mc mb --ignore-existing "k2/${BUCKET}"
echo "bucket ${BUCKET} ready"

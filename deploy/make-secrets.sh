#!/bin/sh
# One random SCRAM password per Kafka principal, for deploy/compose.yaml (run once, from the
# repo root: sh deploy/make-secrets.sh). Each file is given only to its own service as a
# compose secret; the `kafka-setup` job reads them all to create the SCRAM users.
# Existing files are kept (the broker already knows those passwords). deploy/secrets/ is
# ignored by git.
set -eu
dir="$(dirname "$0")/secrets"
mkdir -p "$dir"
chmod 700 "$dir"
umask 077
for principal in gateway intake-needs intake-donations intake-pledges matcher ledger \
    exchange-admin exchange-auditor; do
  f="$dir/$principal.password"
  [ -s "$f" ] || python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > "$f"
done
echo "passwords in $dir"

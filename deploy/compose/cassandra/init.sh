#!/bin/bash
# cassandra-init: creates the notification role and keyspace (init.cql) with the password
# from the compose secret. Idempotent; compose runs it on every `up`.
set -euo pipefail
password=$(cat /run/secrets/cassandra_notification_password)
# The value goes into a quoted CQL literal and a sed replacement: refuse what could end them.
if [[ -z "$password" || "$password" == *"'"* || "$password" == *\\* || "$password" == *"|"* || "$password" == *"&"* ]]; then
	echo "cassandra-init: secret cassandra_notification_password is empty or holds ' \\ | or &" >&2
	exit 1
fi
sed "s|@NOTIFICATION_PASSWORD@|$password|g" /init/init.cql >/tmp/init.cql
# The image's default superuser (cassandra/cassandra): a dev stack only, see README.
cqlsh cassandra 9042 --username=cassandra --password=cassandra --request-timeout=30 --file=/tmp/init.cql
rm -f /tmp/init.cql
echo "cassandra-init: role and keyspace notification are in place"

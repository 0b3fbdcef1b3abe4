#!/bin/bash
# mariadb-init: hands the per-service passwords (compose secrets) to init.sql as user
# variables and runs it as root. Idempotent; compose runs it on every `up`.
set -euo pipefail

secret() { # NAME: the secret's content without its trailing newline
	local v
	v=$(cat "/run/secrets/$1")
	# The value goes into a quoted SQL literal below: refuse what could end it.
	if [[ -z "$v" || "$v" == *"'"* || "$v" == *\\* ]]; then
		echo "mariadb-init: secret $1 is empty or holds a quote or backslash" >&2
		exit 1
	fi
	printf '%s' "$v"
}

# Plain assignments, so a refused secret stops the script (set -e does not see a failure
# inside an argument's command substitution).
MYSQL_PWD=$(secret mariadb_root_password)
export MYSQL_PWD
order_password=$(secret mariadb_order_password)
inventory_password=$(secret mariadb_inventory_password)
payment_password=$(secret mariadb_payment_password)
{
	printf "SET @order_password = '%s';\n" "$order_password"
	printf "SET @inventory_password = '%s';\n" "$inventory_password"
	printf "SET @payment_password = '%s';\n" "$payment_password"
	cat /init/init.sql
} | mariadb --host=mariadb --user=root --batch
echo "mariadb-init: databases, users and grants for order, inventory, payment are in place"

#!/usr/bin/env bash
# cut.sh GOLDEN SERVICE DIR [JQ]: writes DIR/given.jsonl from a recording
# (tools/testdata/recordings/*.jsonl): its header line (seed included), then
# its records on the topics SERVICE consumes (replay.Consumes), minus what
# SERVICE itself produced. For order, its own root events are kept too: the
# ORDER_CREATED (replayed as CreateOrder) and an ORDER_CANCELLED of reason
# CUSTOMER_REQUESTED (replayed as CancelOrder) or TIMEOUT (the clock passing
# the deadline) — replay.Stimuli. JQ, when given, is applied to each record, e.g. to
# make an event arrive earlier:
#   'if .envelope.type=="EVENT_TYPE_ORDER_CANCELLED" then .envelope.occurred_at="2026-11-30T18:06:59.670Z" | .timestamp=1796062019670 else . end'
# Then write DIR/scenario.json by hand and run the scenario with
# SAGASUITE_SCENARIO_UPDATE=1 to write DIR/then.* (review them!).
set -euo pipefail
golden=$1 service=$2 dir=$3 extra=${4:-.}
case $service in
inventory) topics='["orders.v1","payments.v1","shipments.v1"]' ;;
payment) topics='["inventory.v1","orders.v1","shipments.v1"]' ;;
shipping) topics='["inventory.v1","orders.v1"]' ;;
order) topics='["inventory.v1","payments.v1","shipments.v1"]' ;;
notification) topics='["orders.v1","inventory.v1","payments.v1","shipments.v1","notifications.v1"]' ;;
*) echo "cut.sh: unknown service $service (order, inventory, payment, shipping, notification)" >&2; exit 2 ;;
esac
mkdir -p "$dir"
{
  head -n 1 "$golden"
  tail -n +2 "$golden" | jq -c --arg svc "$service" --argjson topics "$topics" \
    "select(((.topic as \$t | \$topics | index(\$t)) and .envelope.producer != \$svc)
      or (\$svc == \"order\" and (.envelope.type == \"EVENT_TYPE_ORDER_CREATED\"
        or (.envelope.order_cancelled.reason // \"\" | IN(\"CANCEL_REASON_CUSTOMER_REQUESTED\", \"CANCEL_REASON_TIMEOUT\"))))) | $extra"
} >"$dir/given.jsonl"
echo "$dir/given.jsonl: $(($(wc -l <"$dir/given.jsonl") - 1)) records" >&2

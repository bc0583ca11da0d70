#!/bin/sh
# Reserve stock for an order. argv: ORDER_ID. Prints the reservation as JSON.
set -eu
order_id="$1"
echo "reserving stock for $order_id (attempt $LF_ATTEMPT)" >&2
printf '{"reservation": "R-%s", "order": "%s"}\n' "$order_id" "$order_id"

#!/bin/sh
# Ship an order. argv: ORDER_ID. Prints a tracking number as JSON.
set -eu
sleep 1
printf '{"tracking": "TRK-%s"}\n' "$1"

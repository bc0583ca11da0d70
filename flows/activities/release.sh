#!/bin/sh
# Undo of reserve: release the stock held for an order. argv: ORDER_ID.
set -eu
echo "releasing stock for $1" >&2
printf '{"released": "R-%s"}\n' "$1"

#!/bin/sh
# work.sh NAME [SECONDS]: a task of the pattern flows. It takes SECONDS (default 0), then
# gives NAME as its result (printed as a JSON string). NAME is a plain word.
sleep "${2:-0}"
printf '"%s"\n' "$1"

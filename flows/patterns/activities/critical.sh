#!/bin/sh
# critical.sh SECONDS: the work of a critical section (flows/patterns/CriticalSection.flow).
# It enters a marker folder that only one process can create at a time (mkdir is atomic), stays
# SECONDS, and leaves it. Finding the folder there means another holder is inside: the attempt
# fails with the error type "Overlap", so a broken mutual exclusion fails the workflow.
marker=.patterns-critical-section
if ! mkdir "$marker" 2>/dev/null; then
  printf '{"error": "Overlap", "message": "another workflow is inside the critical section"}\n'
  exit 3
fi
trap 'rmdir "$marker"; exit 143' TERM INT  # stopped (a cancel): leave the section
sleep "${1:-0}"
rmdir "$marker"
printf '"%s"\n' "${LF_WORKFLOW_ID:-?}"

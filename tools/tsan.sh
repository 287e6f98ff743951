#!/usr/bin/env bash
# TSan run of the threaded code (docs/building.md): tools/sanitize.sh in thread mode.
exec "$(dirname "$0")/sanitize.sh" thread "$@"

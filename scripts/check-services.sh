#!/usr/bin/env bash
# Reports which local servers the test suite can use. With CI=true a missing one is fatal,
# because server tests must run in CI rather than skip.
set -u
missing=0
check() {  # name host port
  if (exec 3<>"/dev/tcp/$2/$3") 2>/dev/null; then
    printf '  %-11s %s:%s  up\n' "$1" "$2" "$3"
  else
    printf '  %-11s %s:%s  DOWN\n' "$1" "$2" "$3"; missing=1
  fi
}
echo "local services:"
check PostgreSQL 127.0.0.1 5432
check MariaDB    127.0.0.1 3306
check NATS       127.0.0.1 4222
if [ "$missing" = 1 ]; then
  if [ "${CI:-}" = "true" ]; then
    echo "a service is down and CI=true: see DEVELOPERS.md for how to start it" >&2; exit 1
  fi
  echo "a service is down: tests that need it will be skipped (see DEVELOPERS.md)" >&2
fi
exit 0

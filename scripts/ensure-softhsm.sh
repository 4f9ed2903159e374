#!/usr/bin/env bash
# Installs SoftHSM2 (Debian package softhsm2) for the HSM tests when it is missing.
set -u
if command -v softhsm2-util >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing softhsm2 (for the HSM tests)"
  (apt-get install -y -q softhsm2 >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q softhsm2 >/dev/null; }) \
    || { echo "could not install softhsm2" >&2; exit 1; }
else
  echo "softhsm2 is missing and cannot be installed here (not root or no apt-get): HSM tests will skip" >&2
fi

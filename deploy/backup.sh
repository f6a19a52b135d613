#!/bin/sh
# BotShop's PostgreSQL backups: a custom-format pg_dump every BACKUP_INTERVAL seconds into
# BACKUP_DIR, keeping the newest BACKUP_KEEP dumps. docker-compose's `backup` service runs
# it in the postgres image; restore with pg_restore (README.md, Backups and restore drill).
#
# The connection comes from libpq's variables: PGHOST, PGPORT, PGUSER, PGPASSWORD,
# PGDATABASE.
#   BACKUP_INTERVAL  seconds between dumps (default 86400, daily)
#   BACKUP_KEEP      dumps kept, the newest (default 7)
#   BACKUP_DIR       where they go (default /backups)
#   BACKUP_ONCE=1    take one dump, rotate, and exit (a manual backup, or a test)
set -eu

BACKUP_DIR="${BACKUP_DIR:-/backups}"
BACKUP_INTERVAL="${BACKUP_INTERVAL:-86400}"
BACKUP_KEEP="${BACKUP_KEEP:-7}"
BACKUP_ONCE="${BACKUP_ONCE:-0}"

is_positive_integer() {
    case "$1" in
        '' | *[!0-9]* | 0*) return 1 ;;
        *) return 0 ;;
    esac
}
is_positive_integer "$BACKUP_INTERVAL" || {
    echo "backup: BACKUP_INTERVAL must be a positive number of seconds, got '$BACKUP_INTERVAL'" >&2
    exit 2
}
is_positive_integer "$BACKUP_KEEP" || {
    echo "backup: BACKUP_KEEP must be a positive number of dumps, got '$BACKUP_KEEP'" >&2
    exit 2
}
mkdir -p "$BACKUP_DIR"

# One dump, written under a temporary name and renamed when complete, so that a failed
# or interrupted dump never counts as a backup nor pushes a good one out of rotation.
backup_once() {
    name="botshop-$(date -u +%Y%m%dT%H%M%SZ).dump"
    partial="$BACKUP_DIR/.$name.partial"
    if ! pg_dump --format=custom --no-owner --file="$partial"; then
        rm -f "$partial"
        echo "backup: pg_dump failed; the previous dumps are kept" >&2
        return 1
    fi
    mv "$partial" "$BACKUP_DIR/$name"
    echo "backup: wrote $BACKUP_DIR/$name"
    # Names sort by time: keep the newest BACKUP_KEEP.
    ls -1 "$BACKUP_DIR" | grep -E '^botshop-[0-9]{8}T[0-9]{6}Z\.dump$' | sort -r |
        tail -n +"$((BACKUP_KEEP + 1))" | while read -r old; do
            rm -f "$BACKUP_DIR/$old"
            echo "backup: removed $BACKUP_DIR/$old"
        done
}

if [ "$BACKUP_ONCE" = "1" ]; then
    backup_once
    exit $?
fi
while true; do
    backup_once || true
    sleep "$BACKUP_INTERVAL"
done

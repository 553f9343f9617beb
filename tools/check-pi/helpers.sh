# check-pi's helpers, sourced by check-pi (and by tests/tools/test_check_pi_helpers.py,
# which runs them under `set -euo pipefail` with nothing mounted, as on a fresh machine).

say() { printf 'check-pi: %s\n' "$*" >&2; }
die() { say "$*"; exit 2; }
# Never delete through a mount (the root's /dev is the host's): unmount first, and
# rm stays on one file system.
# The mounts at or under the folder, deepest first, chosen by awk (which exits 0 when
# none is, where grep exited 1 and, under pipefail, ended check-pi on a fresh machine)
# and by whole path components (scrubbing .../run leaves .../runs's mounts alone).
# /proc/mounts writes a space in a path as \040: the folders here have none.
unmount_under() {
  local m
  awk -v dir="${1%/}" '$2 == dir || index($2, dir "/") == 1 {print $2}' /proc/mounts | sort -r \
    | while read -r m; do umount -l "$m" 2>/dev/null || true; done
}
scrub() { unmount_under "$1"; rm -rf --one-file-system "$1"; }

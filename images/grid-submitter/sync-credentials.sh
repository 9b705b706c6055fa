#!/bin/sh
# One pass of the grid-credential sync (the entrypoint runs it at start and every 30 s):
#   sync-credentials.sh SRC LOCAL_DIR
# SRC is the operator's grid-credentials Secret, mounted read only (keys
# <16 hex>.idtoken, <16 hex>.scitoken, <16 hex>.proxy). LOCAL_DIR is the schedd's.
#   *.idtoken          -> LOCAL_DIR/grid-tokens/OWNER/    (the c-gahp's SEC_TOKEN_DIRECTORY)
#   *.scitoken *.proxy -> LOCAL_DIR/grid-credentials/     (scitokens_file / x509userproxy)
# OWNER is GRID_TOKEN_OWNER, default the user running this script: the schedd runs
# unprivileged, so the gridmanager and c-gahp of every job run as that same user, and
# HTCondor silently skips a token file that is not mode 600 and owned by its reader.
# Files are written mode 600 and renamed into place (never read half written), rewritten
# only when their content changed; files whose keys left the Secret are removed.
set -eu

SRC=${1:?usage: sync-credentials.sh SRC LOCAL_DIR}
LOCAL_DIR=${2:?usage: sync-credentials.sh SRC LOCAL_DIR}
OWNER=${GRID_TOKEN_OWNER:-$(id -un)}
TOKENS="$LOCAL_DIR/grid-tokens/$OWNER"
CREDS="$LOCAL_DIR/grid-credentials"

umask 077
mkdir -p "$TOKENS" "$CREDS"
chmod 700 "$TOKENS" "$CREDS"

# copy SRC_FILE DEST_DIR: atomically, mode 600, only when the content differs.
copy() {
    dest="$2/$(basename "$1")"
    if [ -f "$dest" ] && cmp -s "$1" "$dest"; then
        return 0
    fi
    # The temporary file lives beside the directory HTCondor reads, not in it.
    tmp="$2.tmp.$$"
    cp "$1" "$tmp"
    chmod 600 "$tmp"
    mv -f "$tmp" "$dest"
    echo "sync-credentials: wrote $dest"
}

# prune DEST_DIR SUFFIX...: remove our files whose key is no longer in SRC.
prune() {
    dir=$1
    shift
    for suffix in "$@"; do
        for f in "$dir"/*."$suffix"; do
            [ -e "$f" ] || continue
            if [ ! -e "$SRC/$(basename "$f")" ]; then
                rm -f "$f"
                echo "sync-credentials: removed $f"
            fi
        done
    done
}

if [ ! -d "$SRC" ]; then
    # Not mounted: keep what was synced before rather than pull it from running jobs.
    echo "sync-credentials: $SRC is not a directory; nothing synced" >&2
    exit 1
fi
# A mounted Secret's keys are symlinks into a hidden ..data directory: the globs skip the
# dot entries and -f follows the links.
for f in "$SRC"/*.idtoken; do
    if [ -f "$f" ]; then copy "$f" "$TOKENS"; fi
done
for f in "$SRC"/*.scitoken "$SRC"/*.proxy; do
    if [ -f "$f" ]; then copy "$f" "$CREDS"; fi
done
prune "$TOKENS" idtoken
prune "$CREDS" scitoken proxy

#!/bin/sh
# The grid submitter: one unprivileged condor_master running a COLLECTOR and a SCHEDD
# (no negotiator, no startd: grid-universe jobs need neither). The operator submits
# grid pilots to this schedd with an IDTOKEN signed by this pool's key; its gridmanager
# and condor_c-gahp forward them to the sites' compute entrypoints (HTCondor-C).
#
# Environment (the chart sets it; defaults in brackets):
#   GRID_SUBMITTER_SCHEDD_NAME      the schedd's Name, with an @ to keep it as given [grid-submitter]
#   GRID_SUBMITTER_TRUST_DOMAIN     TRUST_DOMAIN and UID_DOMAIN: the issuer of its tokens (required)
#   GRID_SUBMITTER_PORT             the collector's (and shared port's) port [9618]
#   GRID_SUBMITTER_OPERATOR_IDENTITY  allowed to WRITE (submit, remove) [glidein@TRUST_DOMAIN]
#   GRID_SUBMITTER_LOCAL_DIR        LOCAL_DIR: spool, logs, grid tokens; a persistent volume,
#                                   as grid jobs live in the spool [/var/lib/condor]
#   GRID_SUBMITTER_RUN_DIR          locks, keys, the daemons' own tokens: an emptyDir [/run/condor]
#   GRID_SUBMITTER_SIGNING_KEY_FILE the pool signing key, from a mounted Secret
#                                   [/etc/glidein/signing-key/signingKey]
#   GRID_SUBMITTER_CREDENTIALS_DIR  the operator's grid-credentials Secret, mounted
#                                   [/etc/glidein/grid-credentials]
#   GRID_SUBMITTER_SYNC_INTERVAL    seconds between credential syncs [30]
#   GRID_SUBMITTER_BASE_CONFIG      the packaged configuration, for its paths [/etc/condor/condor_config]
#   GRID_SUBMITTER_EXTRA_CONFIG     HTCondor configuration appended last, verbatim
#   CONDOR_CONFIG                   where the configuration is written [$RUN_DIR/condor_config]
set -eu

SCHEDD_NAME=${GRID_SUBMITTER_SCHEDD_NAME:-grid-submitter}
TRUST_DOMAIN=${GRID_SUBMITTER_TRUST_DOMAIN:?GRID_SUBMITTER_TRUST_DOMAIN must be set}
PORT=${GRID_SUBMITTER_PORT:-9618}
OPERATOR_IDENTITY=${GRID_SUBMITTER_OPERATOR_IDENTITY:-glidein@$TRUST_DOMAIN}
LOCAL_DIR=${GRID_SUBMITTER_LOCAL_DIR:-/var/lib/condor}
RUN_DIR=${GRID_SUBMITTER_RUN_DIR:-/run/condor}
SIGNING_KEY_FILE=${GRID_SUBMITTER_SIGNING_KEY_FILE:-/etc/glidein/signing-key/signingKey}
CREDENTIALS_DIR=${GRID_SUBMITTER_CREDENTIALS_DIR:-/etc/glidein/grid-credentials}
SYNC_INTERVAL=${GRID_SUBMITTER_SYNC_INTERVAL:-30}
BASE_CONFIG=${GRID_SUBMITTER_BASE_CONFIG:-/etc/condor/condor_config}
CONDOR_CONFIG=${CONDOR_CONFIG:-$RUN_DIR/condor_config}
export CONDOR_CONFIG
HERE=$(dirname "$0")

if [ "$(id -u)" = 0 ]; then
    echo "grid-submitter: refusing to run as root (the image's user is condor)" >&2
    exit 1
fi
if [ ! -s "$SIGNING_KEY_FILE" ]; then
    echo "grid-submitter: no signing key at $SIGNING_KEY_FILE" >&2
    exit 1
fi

umask 022
mkdir -p "$LOCAL_DIR/spool" "$LOCAL_DIR/log/GridLogs" "$LOCAL_DIR/execute" \
    "$RUN_DIR/lock" "$RUN_DIR/passwords.d" "$RUN_DIR/tokens.d" "$(dirname "$CONDOR_CONFIG")"
# Everything runs as this one user; the c-gahp's logs go to GridLogs too.
chmod 700 "$RUN_DIR/passwords.d" "$RUN_DIR/tokens.d"

# The signing key: HTCondor reads only a key file owned by its reader, mode 600 (the
# mounted Secret's file is root's). It is the Secret's bytes, as passwords.d/POOL holds them.
(umask 077 && cp "$SIGNING_KEY_FILE" "$RUN_DIR/passwords.d/POOL.tmp")
chmod 600 "$RUN_DIR/passwords.d/POOL.tmp"
mv -f "$RUN_DIR/passwords.d/POOL.tmp" "$RUN_DIR/passwords.d/POOL"

cat > "$CONDOR_CONFIG.tmp" <<CONFIG
# Written by the grid submitter's entrypoint at every start: edit the chart's values.
# The packaged configuration for its paths (SBIN, LIBEXEC, ...); none of the image's
# config.d, which is written for other roles.
include ifexist : $BASE_CONFIG
LOCAL_CONFIG_FILE =
LOCAL_CONFIG_DIR =

DAEMON_LIST = MASTER, COLLECTOR, SCHEDD
LOCAL_DIR = $LOCAL_DIR
SPOOL = \$(LOCAL_DIR)/spool
LOG = \$(LOCAL_DIR)/log
EXECUTE = \$(LOCAL_DIR)/execute
RUN = $RUN_DIR
LOCK = $RUN_DIR/lock
COLLECTOR_HOST = 127.0.0.1:$PORT
SHARED_PORT_PORT = $PORT
COLLECTOR_NAME = $SCHEDD_NAME
SCHEDD_NAME = $SCHEDD_NAME

# Security: IDTOKENS from outside (signed by this pool's key: the operator mints them, or
# condor_token_create here), FS for tools inside this container; READ without
# authentication (the operator finds the schedd through this collector).
TRUST_DOMAIN = $TRUST_DOMAIN
UID_DOMAIN = $TRUST_DOMAIN
SEC_DEFAULT_AUTHENTICATION = REQUIRED
SEC_DEFAULT_AUTHENTICATION_METHODS = FS, IDTOKENS
SEC_CLIENT_AUTHENTICATION_METHODS = FS, IDTOKENS
SEC_READ_AUTHENTICATION = OPTIONAL
SEC_DEFAULT_ENCRYPTION = REQUIRED
SEC_DEFAULT_INTEGRITY = REQUIRED
SEC_PASSWORD_DIRECTORY = $RUN_DIR/passwords.d
SEC_TOKEN_POOL_SIGNING_KEY_FILE = $RUN_DIR/passwords.d/POOL
SEC_TOKEN_DIRECTORY = $RUN_DIR/tokens.d
SEC_TOKEN_SYSTEM_DIRECTORY = $RUN_DIR/tokens.d
SELF_IDS = \$(USERNAME)@\$(UID_DOMAIN), condor@family
ALLOW_READ = *
ALLOW_WRITE = \$(SELF_IDS), $OPERATOR_IDENTITY
ALLOW_DAEMON = \$(SELF_IDS)
ALLOW_ADMINISTRATOR = \$(SELF_IDS)
ALLOW_NEGOTIATOR =
# The operator may act on its own jobs only; this container's user on all.
QUEUE_SUPER_USERS = \$(USERNAME)

# Grid universe (HTCondor-C): the gridmanager and the c-gahp run as this container's
# user (the schedd is unprivileged), which owns the grid tokens and credentials.
GRIDMANAGER = \$(SBIN)/condor_gridmanager
CONDOR_GAHP = \$(SBIN)/condor_c-gahp
CONDOR_GAHP_WORKER = \$(SBIN)/condor_c-gahp_worker_thread
GRIDMANAGER_LOG = \$(LOG)/GridmanagerLog
C_GAHP_LOG = \$(LOG)/GridLogs/CGAHPLog.\$(USERNAME)
C_GAHP_LOCK = \$(LOG)/GridLogs/CGAHPLock.\$(USERNAME)
C_GAHP_WORKER_THREAD_LOG = \$(LOG)/GridLogs/CGAHPWorkerLog.\$(USERNAME)
C_GAHP_WORKER_THREAD_LOCK = \$(LOG)/GridLogs/CGAHPWorkerLock.\$(USERNAME)
C_GAHP_WORKER_THREAD.FILE_TRANSFER_STATS_LOG = \$(LOG)/GridLogs/transfer_history.\$(USERNAME)
# To a CE: IDTOKENS only, from the synced token directory (sync-credentials.sh), never
# this pool's own tokens.
C_GAHP.SEC_CLIENT_AUTHENTICATION_METHODS = IDTOKENS
C_GAHP_WORKER_THREAD.SEC_CLIENT_AUTHENTICATION_METHODS = IDTOKENS
C_GAHP.SEC_TOKEN_DIRECTORY = \$(LOCAL_DIR)/grid-tokens/\$(USERNAME)
C_GAHP_WORKER_THREAD.SEC_TOKEN_DIRECTORY = \$(LOCAL_DIR)/grid-tokens/\$(USERNAME)
# SciTokens and X.509 proxies named by scitokens_file / x509userproxy live here.
GRID_CREDENTIALS_DIR = \$(LOCAL_DIR)/grid-credentials
CONFIG
if [ -n "${GRID_SUBMITTER_EXTRA_CONFIG:-}" ]; then
    printf '\n# GRID_SUBMITTER_EXTRA_CONFIG\n%s\n' "$GRID_SUBMITTER_EXTRA_CONFIG" >> "$CONDOR_CONFIG.tmp"
fi
mv -f "$CONDOR_CONFIG.tmp" "$CONDOR_CONFIG"

# The credentials: at start, then every SYNC_INTERVAL seconds.
sync_once() {
    sh "$HERE/sync-credentials.sh" "$CREDENTIALS_DIR" "$LOCAL_DIR" || echo "grid-submitter: credential sync failed" >&2
}
sync_once
(
    trap 'exit 0' TERM
    while :; do
        sleep "$SYNC_INTERVAL" &
        wait $! || true
        sync_once
    done
) &
syncer=$!

master=
# shellcheck disable=SC2329  # invoked by the trap
stop() {
    # SIGTERM to condor_master is a graceful shutdown of its daemons; the schedd keeps
    # the grid jobs in the spool, and the gridmanager resumes them at the next start.
    if [ -n "$master" ]; then
        kill -TERM "$master" 2>/dev/null || true
    fi
    kill -TERM "$syncer" 2>/dev/null || true
}
trap stop TERM INT

echo "grid-submitter: schedd $SCHEDD_NAME, collector port $PORT, trust domain $TRUST_DOMAIN"
condor_master -f &
master=$!
# wait returns early when a trapped signal arrives: wait again until the master is gone.
status=0
while kill -0 "$master" 2>/dev/null; do
    wait "$master" && status=0 || status=$?
done
kill -TERM "$syncer" 2>/dev/null || true
exit "$status"

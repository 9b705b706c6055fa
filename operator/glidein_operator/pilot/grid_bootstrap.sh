#!/bin/sh
# The grid pilot's executable: an HTCondor job on a site's batch slot that brings
# everything it needs (see glidein_operator/pilot/bundle.py for the decision).
#
#   grid_bootstrap.sh <htcondor tarball | ->
#
# Beside it in the job's scratch dir: glidein-pilot.pyz (the pilot, standard library
# only), glidein-payload (the operator's payload) and, unless the argument is "-", the
# HTCondor tarball (one top folder with sbin/ bin/ lib/ libexec/, relocatable). Everything
# it writes stays in the scratch dir: the worker node is not ours. It runs a personal
# HTCondor (master + startd as the batch job's user) that joins the community's pool, and
# exits when the pilot does, with its exit code. At exit it prints the ends of the logs,
# framed (bundle.LOG_TAIL_BEGIN / LOG_TAIL_END), and leaves no daemon of its own behind.
#
# The frame and the Python minimum are repeated in bundle.py; a unit test holds them equal.

# shellcheck disable=SC2329 # the functions run from the EXIT trap, which it does not follow
set -u

MIN_PYTHON_MAJOR=3
MIN_PYTHON_MINOR=11
ZIPAPP=glidein-pilot.pyz
PAYLOAD=glidein-payload
TAIL_LINES=50
# How long condor_off -fast gets before what is left is killed.
STOP_GRACE=20

say() {
    printf '%s glidein-bootstrap: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"
}

# The batch system keeps stdout and stderr apart; a refusal belongs in both.
fatal() {
    say "FATAL: $*"
    say "FATAL: $*" >&2
    exit 2
}

SCRATCH=${_CONDOR_SCRATCH_DIR:-$PWD}
cd "$SCRATCH" || fatal "cannot enter the scratch dir $SCRATCH"
SCRATCH=$(pwd -P)
# A job's environment may lack PATH; the shell's own default is not exported.
PATH=${PATH:-/usr/local/bin:/usr/bin:/bin}
export PATH

# Whatever honours them writes its temporary files here too, not in the node's /tmp.
mkdir -p "$SCRATCH/tmp" || fatal "cannot create $SCRATCH/tmp"
TMPDIR=$SCRATCH/tmp
TMP=$TMPDIR
TEMP=$TMPDIR
export TMPDIR TMP TEMP

CONFIG=$SCRATCH/condor_config
LOCAL=$SCRATCH/condor
LOG_DIR=$LOCAL/log
PILOT_LOG=$SCRATCH/glidein-pilot.log
PILOT_PID=
STARTED_CONDOR=

tail_one() {
    [ -f "$2" ] || return 0
    printf '==== glidein-pilot log tail: %s ====\n' "$1"
    tail -n "$TAIL_LINES" "$2"
    printf '==== end of %s ====\n' "$1"
}

print_tails() {
    tail_one glidein-pilot.log "$PILOT_LOG"
    tail_one MasterLog "$LOG_DIR/MasterLog"
    tail_one StartLog "$LOG_DIR/StartLog"
    for log in "$LOG_DIR"/StarterLog*; do
        [ -f "$log" ] && tail_one "${log##*/}" "$log"
    done
    return 0
}

# Ours: what runs with this pilot's CONDOR_CONFIG (every daemon, the procd, the pilot
# itself: not this shell) and what runs inside its LOCAL_DIR (its jobs). HTCondor daemons each start a
# session of their own, so the process group would miss them; the batch system's own
# starter runs with its cwd in this scratch dir, so the scratch dir as such is not ours.
our_processes() {
    for proc in /proc/[0-9]*; do
        pid=${proc#/proc/}
        [ "$pid" = "$$" ] && continue
        cwd=$(readlink "$proc/cwd" 2>/dev/null) || cwd=
        case $cwd in
            "$LOCAL" | "$LOCAL"/*)
                echo "$pid"
                continue
                ;;
        esac
        if tr '\0' '\n' <"$proc/environ" 2>/dev/null | grep -qxF "CONDOR_CONFIG=$CONFIG"; then
            echo "$pid"
        fi
    done
}

stop_condor() {
    [ -n "$STARTED_CONDOR" ] || return 0
    left=$(our_processes | tr '\n' ' ')
    [ -n "$left" ] || {
        say "no HTCondor process of this pilot left"
        return 0
    }
    say "stopping what is left of this pilot's HTCondor: $left"
    CONDOR_CONFIG=$CONFIG condor_off -fast -master >/dev/null 2>&1
    waited=0
    while [ "$waited" -lt "$STOP_GRACE" ]; do
        sleep 1
        waited=$((waited + 1))
        left=$(our_processes | tr '\n' ' ')
        [ -n "$left" ] || break
    done
    if [ -n "$left" ]; then
        say "killing what did not stop within ${STOP_GRACE}s: $left"
        # shellcheck disable=SC2086 # one pid a word
        kill -KILL $left 2>/dev/null
    fi
    return 0
}

on_exit() {
    rc=$?
    trap - EXIT HUP INT TERM
    if [ -n "$PILOT_PID" ] && kill -0 "$PILOT_PID" 2>/dev/null; then
        kill -TERM "$PILOT_PID" 2>/dev/null
    fi
    print_tails
    stop_condor
    say "exit $rc"
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# --- a Python 3 -------------------------------------------------------------------------

PYTHON=
tried=
minor=20
for name in python3 $(while [ "$minor" -ge "$MIN_PYTHON_MINOR" ]; do
    echo "python3.$minor"
    minor=$((minor - 1))
done); do
    found=$(command -v "$name" 2>/dev/null) || continue
    if "$found" -c "import sys; sys.exit(sys.version_info < ($MIN_PYTHON_MAJOR, $MIN_PYTHON_MINOR))" >/dev/null 2>&1; then
        PYTHON=$found
        break
    fi
    version=$("$found" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || version=unusable
    tried="$tried $found ($version)"
done
if [ -z "$PYTHON" ]; then
    fatal "no Python $MIN_PYTHON_MAJOR.$MIN_PYTHON_MINOR or newer on PATH ($PATH): the pilot needs Python >= $MIN_PYTHON_MAJOR.$MIN_PYTHON_MINOR (python3 or python3.X); found:${tried:- none}"
fi

# --- the payload ------------------------------------------------------------------------

[ -f "$SCRATCH/$ZIPAPP" ] || fatal "$ZIPAPP is not in the scratch dir $SCRATCH: it must come with the job"
if [ -z "${GLIDEIN_PAYLOAD_FILE:-}" ] && [ -f "$SCRATCH/$PAYLOAD" ]; then
    GLIDEIN_PAYLOAD_FILE=$SCRATCH/$PAYLOAD
    export GLIDEIN_PAYLOAD_FILE
fi
# Without one the pilot would look for a cloud's metadata service, and a worker node
# hosted on a cloud has one: its user data is not this pilot's.
if [ -z "${GLIDEIN_PAYLOAD_FILE:-}" ] && [ -z "${GLIDEIN_PAYLOAD:-}" ]; then
    fatal "no payload: $PAYLOAD is not in the scratch dir $SCRATCH and neither GLIDEIN_PAYLOAD_FILE nor GLIDEIN_PAYLOAD is set"
fi

# --- an HTCondor ------------------------------------------------------------------------

TARBALL=${1:--}
if master=$(command -v condor_master 2>/dev/null); then
    RELEASE=$(cd "$(dirname "$master")/.." && pwd -P)
    say "HTCondor from PATH: $master"
elif [ "$TARBALL" = - ]; then
    fatal "no HTCondor: condor_master is not on PATH ($PATH) and no HTCondor tarball came with the job (argument 1 is '-')"
else
    case $TARBALL in
        /*) ;;
        *) TARBALL=$SCRATCH/$TARBALL ;;
    esac
    [ -f "$TARBALL" ] || fatal "no HTCondor: condor_master is not on PATH and the tarball $TARBALL is not in the scratch dir"
    unpacked=$SCRATCH/htcondor-release
    rm -rf "$unpacked"
    mkdir -p "$unpacked" || fatal "cannot create $unpacked"
    tar -xzf "$TARBALL" -C "$unpacked" || fatal "cannot unpack $TARBALL"
    # Its bytes are in the release now; the scratch dir's space is the slot's.
    case $TARBALL in
        "$SCRATCH"/*) rm -f "$TARBALL" ;;
    esac
    set -- "$unpacked"/*/
    [ "$#" -eq 1 ] && [ -x "$1/sbin/condor_master" ] ||
        fatal "$TARBALL does not unpack to one folder holding sbin/condor_master"
    RELEASE=$(cd "$1" && pwd -P)
    say "HTCondor from the tarball, unpacked in $RELEASE"
fi
PATH=$RELEASE/bin:$RELEASE/sbin:$PATH
export PATH

# --- the base configuration: what a VM image's /etc/condor/condor_config would say ------

# Two pilots may share a worker node (and its host name): names must differ.
NAME=$(printf '%s' "glidein-${GLIDEIN_PILOT_ID:-${_CONDOR_SLOT:-$$}}" | tr -c 'A-Za-z0-9._-' '_')
LIBEXEC_LINE=
# Distribution packages keep helpers in libexec/condor, a tarball in libexec.
if [ -d "$RELEASE/libexec/condor" ]; then
    LIBEXEC_LINE="LIBEXEC = $RELEASE/libexec/condor"
fi
for sub in log spool execute lock run passwords.d; do
    mkdir -p "$LOCAL/$sub" || fatal "cannot create $LOCAL/$sub"
done
chmod 700 "$LOCAL/passwords.d"

cat >"$CONFIG" <<EOF || fatal "cannot write $CONFIG"
# Written by glidein-pilot's grid bootstrap: a personal HTCondor in the batch slot's
# scratch dir, run as the batch job's user (no CONDOR_IDS, never root).
RELEASE_DIR = $RELEASE
$LIBEXEC_LINE
LOCAL_DIR = $LOCAL
LOG = \$(LOCAL_DIR)/log
SPOOL = \$(LOCAL_DIR)/spool
EXECUTE = \$(LOCAL_DIR)/execute
LOCK = \$(LOCAL_DIR)/lock
RUN = \$(LOCAL_DIR)/run
LOCAL_CONFIG_DIR = $SCRATCH/config.d
LOCAL_CONFIG_FILE =
REQUIRE_LOCAL_CONFIG_FILE = False
SEC_PASSWORD_DIRECTORY = \$(LOCAL_DIR)/passwords.d
SEC_TOKEN_SYSTEM_DIRECTORY = $SCRATCH/tokens.d
MASTER_NAME = $NAME
STARTD_NAME = $NAME
# Jobs must not take this slot for a file system shared with their submit host.
FILESYSTEM_DOMAIN = $NAME.\$(FULL_HOSTNAME)
use security:recommended
# The packaged policy admits condor and root as administrators; here the daemons run as
# the batch job's user, and the pilot stops them (condor_off) as that user.
ALLOW_ADMINISTRATOR = \$(ALLOW_ADMINISTRATOR) \$(USERNAME)@*
# Nothing of the worker node's: no docker, no java, no cgroups, no benchmarks, no mail.
DOCKER =
JAVA =
BASE_CGROUP =
BENCHMARKS_JOBLIST =
RunBenchmarks = False
CONDOR_ADMIN =
MAIL = /bin/true
EOF

# The batch system's knobs (_CONDOR_SCRATCH_DIR, _CONDOR_SLOT, ...) would be read as
# this HTCondor's configuration. _CONDOR_ANCESTOR_* stay: they let the batch system find
# the pilot's daemons as part of its job.
MACHINE_AD=${_CONDOR_MACHINE_AD:-}
JOB_AD=${_CONDOR_JOB_AD:-}
for var in $(env | sed -n 's/^\(_CONDOR_[A-Za-z0-9_]*\)=.*/\1/p'); do
    case $var in
        _CONDOR_ANCESTOR_*) ;;
        *) unset "$var" ;;
    esac
done
# --- the pilot --------------------------------------------------------------------------

set -- "$SCRATCH/$ZIPAPP" \
    --config-dir "$SCRATCH/config.d" \
    --token-dir "$SCRATCH/tokens.d" \
    --log "$PILOT_LOG" \
    --no-log-tails \
    --shutdown-command true
[ -n "$MACHINE_AD" ] && set -- "$@" --machine-ad "$MACHINE_AD"
[ -n "$JOB_AD" ] && set -- "$@" --job-ad "$JOB_AD"
say "pilot $NAME: $PYTHON $*"
STARTED_CONDOR=yes
# In the background so that a signal from the batch system is handled at once. Only the
# pilot gets CONDOR_CONFIG: it marks this pilot's processes (our_processes).
CONDOR_CONFIG=$CONFIG "$PYTHON" "$@" &
PILOT_PID=$!
wait "$PILOT_PID"
rc=$?
PILOT_PID=
exit "$rc"

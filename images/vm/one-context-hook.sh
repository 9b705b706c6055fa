#!/bin/sh
# OpenNebula context hook: one-context has mounted the context disk and written
# context.sh; start the pilot (systemd may have started before the context was ready).
set -eu
if [ -f /var/run/one-context/context.sh ]; then
    systemctl restart glidein-pilot.service
fi

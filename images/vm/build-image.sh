#!/bin/sh
# Turns a fresh AlmaLinux/Rocky 9 cloud image into a pilot image (run as root inside the
# image builder of your choice: virt-customize, Packer's shell provisioner, ...):
#   sh build-image.sh /path/to/glidein-operator-checkout
set -eu

SRC=${1:?usage: build-image.sh SOURCE_CHECKOUT}
HTCONDOR_SERIES=${HTCONDOR_SERIES:-24.x}

# HTCondor execute packages from HTCondor's own repository.
dnf install -y "https://research.cs.wisc.edu/htcondor/repo/${HTCONDOR_SERIES}/htcondor-release-current.el9.noarch.rpm"
dnf install -y condor python3 cloud-init
# OpenNebula contextualization (context disk -> /var/run/one-context), harmless elsewhere.
dnf install -y one-context || echo "one-context not available: OpenNebula support disabled"

install -d -m 0755 /opt/glidein/glidein_operator
install -m 0644 "$SRC/operator/glidein_operator/__init__.py" /opt/glidein/glidein_operator/
cp -r "$SRC/operator/glidein_operator/pilot" /opt/glidein/glidein_operator/
install -m 0644 "$SRC/images/vm/glidein-pilot.service" /etc/systemd/system/glidein-pilot.service
install -m 0755 "$SRC/images/vm/one-context-hook.sh" /etc/one-context.d/loc-90-glidein-pilot

# The pilot writes its own HTCondor configuration at boot; condor must not start alone.
systemctl disable condor.service
systemctl enable glidein-pilot.service
# Pilots shut the machine down at the end of their life: make that terminate the VM where
# the cloud honours it (EC2), and leave the rest to the operator's reaper.
install -d -m 0700 /etc/condor/tokens.d

# Record what went in, for the VMImage's patch date and version.
dnf -y upgrade --security
date -u +%Y-%m-%d > /etc/glidein-image-patch-date

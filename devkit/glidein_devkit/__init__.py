"""The glidein operator's development kit: what tests and the demo run the operator
against, kept out of the product package (``glidein_operator`` never imports it).

A local control plane built from upstream source (``controlplane/``), kubectl helpers
(``kube``), the service doubles (``ec2server``: moto made AWS-faithful;
``openstack_fake``, ``opennebula_fake``; ``fake_pool``, ``fake_grid``, ``pool_server``;
``simcloud``, a cloud in simulated time), boot emulators running the real pilot
(``boot*``), a real HTCondor pool (``condor_pool``), the leak check and the demo.
Installed for development with ``make install`` (``pip install -e devkit``).
"""

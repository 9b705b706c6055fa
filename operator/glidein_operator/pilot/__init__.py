"""What runs on the worker: read the payload, configure HTCondor, enforce the lifetime.

Standard library only (the VM image and pod image need nothing but Python 3 and
HTCondor's execute packages); nothing here imports the operator's dependencies.
"""

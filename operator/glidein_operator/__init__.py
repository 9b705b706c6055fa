"""Glidein Operator: grows HTCondor pools on demand across clouds and grids."""

__version__ = "0.1.0"

"""Credentials the operator makes for pilots (never the cloud keys)."""

"""Rotation connectors: how a credential's new value reaches its target system."""

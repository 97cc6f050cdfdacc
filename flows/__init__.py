"""Prefect flows: monitor, respond, follow_up, resolve, and the drill."""

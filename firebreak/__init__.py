"""Firebreak: crisis-response automation for brands on social media.

Layers (imports go one way, enforced by tests/test_layers.py):

    firebreak.cli -> flows -> tasks -> {connectors, store, audit} -> config -> {errors, domain}
"""

__version__ = "0.1.0"

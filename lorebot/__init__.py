"""The application: the ``lorebot`` command and process wiring, above the connectors and the core.

Layers, each importing only those below it (checked by ``tests/test_layering.py``): ``lorebot`` → ``connectors``
(one adapter per platform) → ``bot`` (the platform-free core).
"""

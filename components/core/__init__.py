"""The shared ML core: what more than one step uses, each concept in one module."""

"""The `contactpoint` command: the registry's commands and the harness's, composed from above.

The registry (`reference_app`) imports nothing from the generator or the harnesses and has a
command line of its own, `contactpoint-registry`; this package sits above every part and needs
the `harness` extra for the commands that generate, load or attack.
"""

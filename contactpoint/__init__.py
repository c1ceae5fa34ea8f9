"""The `contactpoint` command line's parts that sit above the registry (the deploy checks)."""

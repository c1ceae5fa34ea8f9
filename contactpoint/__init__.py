"""The `contactpoint` command's composition: jobs that stand above the registry and harnesses."""

"""The reference registry: a minimal national children's contact registry to test against."""

"""Children: the registry's records, search, need-to-know views, correction and shielding."""

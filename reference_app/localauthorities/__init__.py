"""Local authorities: the 152 English councils that own children's records."""

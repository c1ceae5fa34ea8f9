"""Parents' rights: subject access packs, and rectification and shielding requests decided by
the child's local authority with a decision trail."""

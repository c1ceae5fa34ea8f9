"""Access: the one permission vocabulary, roles, principals and route guards."""

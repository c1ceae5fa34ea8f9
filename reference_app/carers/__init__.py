"""Carers: parents and carers linked to children, with their contact details."""

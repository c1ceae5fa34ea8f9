"""Synthetic population: provably fictional children, carers, services and practitioners."""

"""Seeding the catalogue of local authorities into the registry."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from reference_app.localauthorities.catalogue import load_catalogue
from reference_app.localauthorities.models import LocalAuthority


def seed_local_authorities(db: Session) -> dict[str, LocalAuthority]:
    """Add any of the 152 LAs the database lacks; return them all by ONS code."""
    existing = {la.ons_code: la for la in db.scalars(select(LocalAuthority))}
    for info in load_catalogue():
        if info.ons_code not in existing:
            la = LocalAuthority(ons_code=info.ons_code, name=info.name, region=info.region)
            db.add(la)
            existing[info.ons_code] = la
    db.flush()
    return existing

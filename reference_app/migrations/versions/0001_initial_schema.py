"""Initial schema: registry tables, the audit log, and append-only guards on PostgreSQL.

Revision ID: 0001
Revises:
Create Date: 2026-11-21 10:28:00.472628
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import reference_app.kit.db

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


APPEND_ONLY = ("audit_events", "audit_log_entries", "audit_checkpoints")


def _append_only_guards() -> None:
    """Refuse UPDATE and DELETE on the trail for every role, owner included (ASVS 16.4.2)."""
    op.execute(
        """
        CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'the audit trail is append-only (% on %)', TG_OP, TG_TABLE_NAME
                USING ERRCODE = 'insufficient_privilege';
        END $$
        """
    )
    for table in APPEND_ONLY:
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()"
        )


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", reference_app.kit.db.UTCDateTime(), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("severity", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=15), nullable=False),
        sa.Column("subject_user_id", sa.Integer(), nullable=False),
        sa.Column("local_authority_id", sa.Integer(), nullable=False),
        sa.Column("child_id", sa.String(length=13), nullable=True),
        sa.Column("audit_event_id", sa.BigInteger(), nullable=True),
        sa.Column("summary", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alerts_created_at"), ["created_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_alerts_local_authority_id"), ["local_authority_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_alerts_subject_user_id"), ["subject_user_id"], unique=False
        )

    op.create_table(
        "audit_checkpoints",
        sa.Column(
            "tree_size",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("first_seq", sa.BigInteger(), nullable=False),
        sa.Column("root_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("leaf_hashes", sa.LargeBinary(), nullable=False),
        sa.Column("frontier", sa.LargeBinary(), nullable=False),
        sa.Column("signed_at", reference_app.kit.db.UTCDateTime(), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("signature", sa.LargeBinary(length=64), nullable=False),
        sa.PrimaryKeyConstraint("tree_size", name=op.f("pk_audit_checkpoints")),
    )
    op.create_table(
        "audit_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("occurred_at", reference_app.kit.db.UTCDateTime(), nullable=False),
        sa.Column("tag", sa.String(length=40), nullable=False),
        sa.Column("outcome", sa.String(length=10), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("actor_role", sa.String(length=40), nullable=True),
        sa.Column("actor_organisation_id", sa.Integer(), nullable=True),
        sa.Column("actor_local_authority_id", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=64), nullable=True),
        sa.Column("request_id", sa.String(length=32), nullable=True),
        sa.Column("child_id", sa.String(length=13), nullable=True),
        sa.Column("reason_code", sa.String(length=40), nullable=True),
        sa.Column("relationship", sa.String(length=20), nullable=True),
        sa.Column("details", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_events_actor_id"), ["actor_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_events_child_id"), ["child_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_audit_events_occurred_at"), ["occurred_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_audit_events_tag"), ["tag"], unique=False)

    op.create_table(
        "audit_log_entries",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("event_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_log_entries")),
        sa.UniqueConstraint("event_id", name=op.f("uq_audit_log_entries_event_id")),
    )
    op.create_table(
        "carers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("given_name_enc", sa.LargeBinary(), nullable=False),
        sa.Column("family_name_enc", sa.LargeBinary(), nullable=False),
        sa.Column("phone_enc", sa.LargeBinary(), nullable=True),
        sa.Column("email_enc", sa.LargeBinary(), nullable=True),
        sa.Column("address_enc", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_carers")),
    )
    op.create_table(
        "local_authorities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ons_code", sa.String(length=9), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("region", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_local_authorities")),
        sa.UniqueConstraint("ons_code", name=op.f("uq_local_authorities_ons_code")),
    )
    op.create_table(
        "login_throttles",
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_started_at", reference_app.kit.db.UTCDateTime(), nullable=False),
        sa.Column("locked_until", reference_app.kit.db.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_throttles")),
    )
    op.create_table(
        "audit_pending",
        sa.Column(
            "event_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["event_id"], ["audit_events.id"], name=op.f("fk_audit_pending_event_id_audit_events")
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_audit_pending")),
    )
    op.create_table(
        "children",
        sa.Column("id", sa.String(length=13), nullable=False),
        sa.Column("local_authority_id", sa.Integer(), nullable=False),
        sa.Column("gender", sa.String(length=10), nullable=False),
        sa.Column("given_name_enc", sa.LargeBinary(), nullable=False),
        sa.Column("family_name_enc", sa.LargeBinary(), nullable=False),
        sa.Column("date_of_birth_enc", sa.LargeBinary(), nullable=False),
        sa.Column("address_enc", sa.LargeBinary(), nullable=False),
        sa.Column("given_name_bidx", sa.LargeBinary(length=16), nullable=False),
        sa.Column("family_name_bidx", sa.LargeBinary(length=16), nullable=False),
        sa.Column("family_name_phonetic_bidx", sa.LargeBinary(length=16), nullable=False),
        sa.Column("date_of_birth_bidx", sa.LargeBinary(length=16), nullable=False),
        sa.Column("postcode_bidx", sa.LargeBinary(length=16), nullable=False),
        sa.Column("shielded", sa.Boolean(), nullable=False),
        sa.Column("archived_at", reference_app.kit.db.UTCDateTime(), nullable=True),
        sa.Column("created_at", reference_app.kit.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", reference_app.kit.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["local_authority_id"],
            ["local_authorities.id"],
            name=op.f("fk_children_local_authority_id_local_authorities"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_children")),
    )
    with op.batch_alter_table("children", schema=None) as batch_op:
        batch_op.create_index(
            "ix_children_family_dob", ["family_name_bidx", "date_of_birth_bidx"], unique=False
        )
        batch_op.create_index(
            "ix_children_family_given", ["family_name_bidx", "given_name_bidx"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_children_local_authority_id"), ["local_authority_id"], unique=False
        )
        batch_op.create_index("ix_children_phonetic", ["family_name_phonetic_bidx"], unique=False)
        batch_op.create_index("ix_children_postcode", ["postcode_bidx"], unique=False)

    op.create_table(
        "organisations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("local_authority_id", sa.Integer(), nullable=False),
        sa.Column("phone", sa.String(length=30), nullable=True),
        sa.ForeignKeyConstraint(
            ["local_authority_id"],
            ["local_authorities.id"],
            name=op.f("fk_organisations_local_authority_id_local_authorities"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisations")),
    )
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_organisations_local_authority_id"), ["local_authority_id"], unique=False
        )

    op.create_table(
        "child_carers",
        sa.Column("child_id", sa.String(length=13), nullable=False),
        sa.Column("carer_id", sa.Integer(), nullable=False),
        sa.Column("relationship", sa.String(length=20), nullable=False),
        sa.Column("parental_responsibility", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["carer_id"],
            ["carers.id"],
            name=op.f("fk_child_carers_carer_id_carers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["child_id"],
            ["children.id"],
            name=op.f("fk_child_carers_child_id_children"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("child_id", "carer_id", name=op.f("pk_child_carers")),
    )
    with op.batch_alter_table("child_carers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_child_carers_carer_id"), ["carer_id"], unique=False)

    op.create_table(
        "practitioners",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("display_name_enc", sa.LargeBinary(), nullable=False),
        sa.Column("email_enc", sa.LargeBinary(), nullable=True),
        sa.Column("role", sa.String(length=40), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("local_authority_id", sa.Integer(), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("totp_secret_enc", sa.LargeBinary(), nullable=False),
        sa.Column("totp_last_step", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("authz_version", sa.Integer(), nullable=False),
        sa.Column("created_at", reference_app.kit.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["local_authority_id"],
            ["local_authorities.id"],
            name=op.f("fk_practitioners_local_authority_id_local_authorities"),
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_practitioners_organisation_id_organisations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_practitioners")),
        sa.UniqueConstraint("username", name=op.f("uq_practitioners_username")),
    )
    with op.batch_alter_table("practitioners", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_practitioners_local_authority_id"), ["local_authority_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_practitioners_organisation_id"), ["organisation_id"], unique=False
        )

    op.create_table(
        "involvements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("child_id", sa.String(length=13), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("practitioner_id", sa.Integer(), nullable=True),
        sa.Column("started_on", sa.Date(), nullable=False),
        sa.Column("ended_on", sa.Date(), nullable=True),
        sa.Column("is_lead_professional", sa.Boolean(), nullable=False),
        sa.Column("caf_assessment_on", sa.Date(), nullable=True),
        sa.Column("sensitive", sa.Boolean(), nullable=False),
        sa.Column("consent_recorded", sa.Boolean(), nullable=False),
        sa.Column("created_at", reference_app.kit.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["child_id"],
            ["children.id"],
            name=op.f("fk_involvements_child_id_children"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_involvements_organisation_id_organisations"),
        ),
        sa.ForeignKeyConstraint(
            ["practitioner_id"],
            ["practitioners.id"],
            name=op.f("fk_involvements_practitioner_id_practitioners"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_involvements")),
    )
    with op.batch_alter_table("involvements", schema=None) as batch_op:
        batch_op.create_index(
            "ix_involvements_child_org", ["child_id", "organisation_id"], unique=False
        )
        batch_op.create_index("ix_involvements_practitioner", ["practitioner_id"], unique=False)

    op.create_table(
        "login_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("practitioner_id", sa.Integer(), nullable=False),
        sa.Column("authz_version", sa.Integer(), nullable=False),
        sa.Column("created_at", reference_app.kit.db.UTCDateTime(), nullable=False),
        sa.Column("expires_at", reference_app.kit.db.UTCDateTime(), nullable=False),
        sa.Column("revoked_at", reference_app.kit.db.UTCDateTime(), nullable=True),
        sa.Column("source", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["practitioner_id"],
            ["practitioners.id"],
            name=op.f("fk_login_sessions_practitioner_id_practitioners"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_sessions")),
    )
    with op.batch_alter_table("login_sessions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_login_sessions_practitioner_id"), ["practitioner_id"], unique=False
        )

    if op.get_bind().dialect.name == "postgresql":
        _append_only_guards()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute("DROP FUNCTION IF EXISTS audit_append_only()")
    with op.batch_alter_table("login_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_login_sessions_practitioner_id"))

    op.drop_table("login_sessions")
    with op.batch_alter_table("involvements", schema=None) as batch_op:
        batch_op.drop_index("ix_involvements_practitioner")
        batch_op.drop_index("ix_involvements_child_org")

    op.drop_table("involvements")
    with op.batch_alter_table("practitioners", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_practitioners_organisation_id"))
        batch_op.drop_index(batch_op.f("ix_practitioners_local_authority_id"))

    op.drop_table("practitioners")
    with op.batch_alter_table("child_carers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_child_carers_carer_id"))

    op.drop_table("child_carers")
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_organisations_local_authority_id"))

    op.drop_table("organisations")
    with op.batch_alter_table("children", schema=None) as batch_op:
        batch_op.drop_index("ix_children_postcode")
        batch_op.drop_index("ix_children_phonetic")
        batch_op.drop_index(batch_op.f("ix_children_local_authority_id"))
        batch_op.drop_index("ix_children_family_given")
        batch_op.drop_index("ix_children_family_dob")

    op.drop_table("children")
    op.drop_table("audit_pending")
    op.drop_table("login_throttles")
    op.drop_table("local_authorities")
    op.drop_table("carers")
    op.drop_table("audit_log_entries")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_events_tag"))
        batch_op.drop_index(batch_op.f("ix_audit_events_occurred_at"))
        batch_op.drop_index(batch_op.f("ix_audit_events_child_id"))
        batch_op.drop_index(batch_op.f("ix_audit_events_actor_id"))

    op.drop_table("audit_events")
    op.drop_table("audit_checkpoints")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alerts_subject_user_id"))
        batch_op.drop_index(batch_op.f("ix_alerts_local_authority_id"))
        batch_op.drop_index(batch_op.f("ix_alerts_created_at"))

    op.drop_table("alerts")

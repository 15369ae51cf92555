"""SQLAlchemy 2 table definitions (Core). Alembic migrations are generated from these."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; FreezeDesk stores UTC-aware times only")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        stored: datetime = value
        if stored.tzinfo is None:
            return stored.replace(tzinfo=UTC)
        return stored.astimezone(UTC)


accounts = Table(
    "accounts",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("locale", String(8), nullable=False, default="ja"),
    Column("email", String(320)),
    Column("display_name", String(200)),
    # How many events of this account are stored (``events`` rows), kept by ingestion in the
    # transaction that stores them, under the account's row lock. Every monitor remembers how many
    # it has counted, so one that stored fewer than this knows another process stored the rest
    # (monitoring.live: several server processes on one database).
    Column("events_counted", BigInteger, nullable=False, server_default=text("0")),
)

staff = Table(
    "staff",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("role", String(20), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    # Who the person is: an e-mail address or a stable handle, stored lower-case (so unique
    # case-insensitively). Every staff key names its person, so one human is one approver however many
    # keys they hold (the four-eyes rule). Rows from before migration 0008 got their id, lower-cased.
    Column("handle", String(254), nullable=False, unique=True),
    # Set by ``freezedesk staff deactivate``: none of the person's keys authenticates any more.
    Column("deactivated_at", UTCDateTime()),
)

cases = Table(
    "cases",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("account_id", String(128), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("cause", String(32), nullable=False),
    Column("state", String(32), nullable=False),
    Column("opened_at", UTCDateTime(), nullable=False),
    Column("sla_due_at", UTCDateTime(), nullable=False),
    Column("closed_at", UTCDateTime()),
    Column("inquiry_number", String(16), nullable=False, unique=True),
    Column("version", Integer, nullable=False),
)

case_events = Table(
    "case_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_id", String(40), ForeignKey("cases.id"), nullable=False, index=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("event", String(40), nullable=False),
    Column("from_state", String(32)),
    # NULL for an entry that is not a state change (evidence such as a monitoring alert, whose
    # details are in ``data``); the customer's inquiry timeline shows state changes only.
    Column("to_state", String(32)),
    Column("data", Text),  # JSON object, or NULL
)

restrictions = Table(
    "restrictions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("account_id", String(128), ForeignKey("accounts.id"), nullable=False),
    Column("cause", String(32), nullable=False),
    Column("reason_code", String(64), nullable=False),
    Column("scopes", String(100), nullable=False),  # comma-separated scope names
    Column("close_only", Boolean, nullable=False, default=False),
    Column("source", String(20), nullable=False),
    Column("disclosure", String(10), nullable=False),
    Column("legal_basis", Text),
    Column("note", Text),
    Column("starts_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime()),
    Column("status", String(12), nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("case_id", String(40), ForeignKey("cases.id")),
    Column("lift_requested_by", String(64)),
    Column("lift_reason", Text),
    Column("lift_legal_reference", Text),
    Column("lift_requested_at", UTCDateTime()),
    Column("lifted_at", UTCDateTime()),
    Column("disposition", String(32)),
    Column("version", Integer, nullable=False),
    Index("ix_restrictions_account_status", "account_id", "status"),
    Index("ix_restrictions_status", "status"),
)

lift_approvals = Table(
    "lift_approvals",
    metadata,
    Column("restriction_id", String(40), ForeignKey("restrictions.id"), primary_key=True),
    # The primary key is the database's own guard: one person, one approval per restriction.
    Column("approver_id", String(64), primary_key=True),
    Column("role", String(20), nullable=False),
    Column("approved_at", UTCDateTime(), nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("scopes", Text, nullable=False),
    Column("staff_id", String(40), ForeignKey("staff.id")),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime()),
)

webhooks = Table(
    "webhooks",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("url", Text, nullable=False),
    Column("events", Text, nullable=False),
    # sealed with the operator key: fdenc:v1:<key id>:<base64url> (notify.secretbox); never in clear
    Column("secret", Text, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("active", Boolean, nullable=False, default=True),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", String(40), primary_key=True),  # the event id receivers dedupe on
    Column("event_type", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(40), ForeignKey("outbox.id"), nullable=False),
    Column("webhook_id", String(40), ForeignKey("webhooks.id"), nullable=False),
    Column("status", String(12), nullable=False),  # pending, delivered, failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("last_error", Text),
    Column("delivered_at", UTCDateTime()),
    UniqueConstraint("event_id", "webhook_id", name="uq_webhook_deliveries_event_webhook"),
    Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(64), nullable=False),
    Column("entity_type", String(32), nullable=False),
    Column("entity_id", String(128), nullable=False),
    Column("account_id", String(128)),
    Column("data", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

# One row: the head of the audit chain. Locking it serialises appends so the chain never forks.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("api_key_id", String(40), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("method", String(8), nullable=False),
    Column("path", Text, nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("status_code", Integer),  # NULL while the first request is still running
    Column("response_body", Text),
    Column("created_at", UTCDateTime(), nullable=False),
)

# -- screening ------------------------------------------------------------------------------------

# The loaded sanctions lists: one row per listed entity, the Entity as JSON. Every server process
# builds its in-memory index from here, so all of them screen against the same list version.
sanctions_entities = Table(
    "sanctions_entities",
    metadata,
    Column("id", String(128), primary_key=True),  # <source>-<native id>
    Column("source", String(32), nullable=False, index=True),
    Column("fingerprint", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

list_loads = Table(
    "list_loads",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("sources", Text, nullable=False),
    Column("entities", Integer, nullable=False),
    Column("added", Integer, nullable=False),
    Column("changed", Integer, nullable=False),
    Column("removed", Integer, nullable=False),
)

# What screening knows about an account holder (the exchange sends it with PUT /v1/accounts/{id}).
account_identities = Table(
    "account_identities",
    metadata,
    Column("account_id", String(128), ForeignKey("accounts.id"), primary_key=True),
    Column("name", String(400), nullable=False),
    Column("schema", String(16), nullable=False),
    Column("birth_date", String(10)),
    Column("country", String(2)),
    Column("updated_at", UTCDateTime(), nullable=False),
)

screening_hits = Table(
    "screening_hits",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("account_id", String(128), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("entity_id", String(128), nullable=False),
    Column("entity_fingerprint", String(64), nullable=False),
    Column("kind", String(8), nullable=False),  # name | address
    Column("score", String(8), nullable=False),  # decimal text, exact as scored
    Column("query", Text, nullable=False),
    Column("explanation", Text, nullable=False),
    Column("status", String(16), nullable=False),  # pending_review, confirmed, dismissed
    Column("case_id", String(40), ForeignKey("cases.id")),
    Column("restriction_id", String(40), ForeignKey("restrictions.id")),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("decided_by", String(64)),
    Column("decided_at", UTCDateTime()),
    Column("decision_reason", Text),
    Index("ix_screening_hits_pair", "account_id", "entity_id"),
)

# -- monitoring -----------------------------------------------------------------------------------

# Every event the exchange core reported, once: the primary key makes a replayed event a no-op.
# ``payload`` is the canonical JSON of the event (monitoring.events.Event.to_json()), so the rule
# engines and backtests can rebuild the exact event; the other columns exist to be queried.
events = Table(
    "events",
    metadata,
    Column("event_id", String(128), primary_key=True),
    Column("account_id", String(128), nullable=False),
    Column("type", String(20), nullable=False),
    Column("ts", UTCDateTime(), nullable=False),
    Column("payload", Text, nullable=False),
    Column("ingested_at", UTCDateTime(), nullable=False),
    # One account's history in time order is the question every windowed feature asks.
    Index("ix_events_account_ts", "account_id", "ts"),
    # A backtest over a period scans by time across all accounts.
    Index("ix_events_ts", "ts"),
)

# One row per alert a monitoring rule raised and FreezeDesk acted on. The unique key is the
# alert's identity — account, rule and the time of the event that fired it — so applying the same
# alert twice (a replayed batch, a worker redelivery after a crash) records and restricts once.
monitoring_alerts = Table(
    "monitoring_alerts",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("account_id", String(128), ForeignKey("accounts.id"), nullable=False),
    Column("rule_id", String(64), nullable=False),
    Column("reason_code", String(64), nullable=False),
    Column("action", String(8), nullable=False),  # alert | hold | freeze (the rule's, as configured)
    Column("ts", UTCDateTime(), nullable=False),  # the firing event's time
    Column("event_ids", Text, nullable=False),  # JSON array: the trigger and the events behind it
    Column("case_id", String(40), ForeignKey("cases.id"), nullable=False, index=True),
    # The restriction this alert created — or, when one from the same rule was already in force,
    # NULL: the alert is evidence on that restriction's case, it does not restrict twice.
    Column("restriction_id", String(40), ForeignKey("restrictions.id")),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("account_id", "rule_id", "ts", name="uq_monitoring_alerts_account_rule_ts"),
    # The staff list (GET /v1/monitoring/alerts): newest first by the firing event's time, id as tie-break.
    Index("ix_monitoring_alerts_ts_id", "ts", "id"),
)

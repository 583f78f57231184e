-- Read models owned by projector-orders. Each row stores the version of its
-- stream it reflects, written in the same transaction as the change: that is
-- what makes redelivered events harmless.

CREATE TABLE orders_view (
    order_id         uuid        PRIMARY KEY,
    customer_id      uuid        NOT NULL,
    status           text        NOT NULL,
    items            jsonb       NOT NULL,
    tax_cents        bigint      NOT NULL DEFAULT 0,
    total_cents      bigint      NOT NULL,
    currency         text        NOT NULL,
    shipping_address jsonb,
    version          bigint      NOT NULL,
    last_position    bigint      NOT NULL,
    placed_at        timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);
-- The per-customer order list, newest first, with keyset pagination on
-- (placed_at, order_id).
CREATE INDEX orders_view_customer ON orders_view (customer_id, placed_at DESC, order_id DESC);

CREATE TABLE accounts_balance (
    account_id    uuid        PRIMARY KEY,
    owner         text        NOT NULL,
    balance_cents bigint      NOT NULL,
    currency      text        NOT NULL,
    status        text        NOT NULL,
    version       bigint      NOT NULL,
    last_position bigint      NOT NULL,
    updated_at    timestamptz NOT NULL
);
CREATE INDEX accounts_balance_balance ON accounts_balance (balance_cents DESC, account_id);

-- One row per money-moving or lifecycle event of an account.
CREATE TABLE account_activity (
    account_id          uuid        NOT NULL,
    version             bigint      NOT NULL,
    position            bigint      NOT NULL,
    type                text        NOT NULL,
    amount_cents        bigint      NOT NULL, -- signed: deposits positive, withdrawals negative
    balance_after_cents bigint      NOT NULL,
    description         text        NOT NULL DEFAULT '',
    recorded_at         timestamptz NOT NULL,
    PRIMARY KEY (account_id, version)
);

-- How far this projection got: the highest store position applied.
CREATE TABLE projection_checkpoints (
    projection     text        PRIMARY KEY,
    position       bigint      NOT NULL DEFAULT 0,
    events_applied bigint      NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

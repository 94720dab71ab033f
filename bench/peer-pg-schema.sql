-- bench/peer-pg-schema.sql - the PostgreSQL peer's tables (bench/run.sh's
-- `peers` group, docs/BENCHMARKS.md): a catalog row per sku with its
-- counters, and a row per hold, as a shop's own hold table would have them.
CREATE TABLE skus (
    sku   text PRIMARY KEY,
    stock bigint NOT NULL CHECK (stock >= 0),
    held  bigint NOT NULL DEFAULT 0 CHECK (held >= 0),
    sold  bigint NOT NULL DEFAULT 0 CHECK (sold >= 0)
);
CREATE TABLE holds (
    id         bigserial PRIMARY KEY,
    sku        text NOT NULL REFERENCES skus,
    qty        bigint NOT NULL CHECK (qty > 0),
    customer   text NOT NULL,
    expires_at timestamptz NOT NULL
);
-- What a sweeper releasing expired holds would scan (none runs here).
CREATE INDEX holds_expires_at ON holds (expires_at);

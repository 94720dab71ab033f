-- bench/peer-pg-hold.sql - a hold as the usual PostgreSQL-backed shop does it
-- (pgbench script for bench/run.sh's `peers` group, docs/BENCHMARKS.md): one
-- transaction; a conditional UPDATE that takes the quantity if it is
-- available, then, only if a row was updated, the hold's row. The row lock
-- the UPDATE takes on the sku is held until COMMIT has flushed the WAL.
-- Set with -D: sku, qty, ttl_s; run with -M prepared (each :variable is a
-- parameter, so the sku needs no quoting).
\set customer random(0, 9999)
BEGIN;
WITH taken AS (
    UPDATE skus SET held = held + :qty
    WHERE sku = :sku AND stock - held - sold >= :qty
    RETURNING 1
) SELECT count(*) AS granted FROM taken \gset
\if :granted
INSERT INTO holds (sku, qty, customer, expires_at)
    VALUES (:sku, :qty, 'c-' || :customer, now() + make_interval(secs => :ttl_s));
\endif
COMMIT;

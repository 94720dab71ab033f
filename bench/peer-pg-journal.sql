-- bench/peer-pg-journal.sql - one journal row as a holdfast node appends it
-- (pgbench script for bench/cluster.sh, docs/BENCHMARKS.md "The journal in
-- PostgreSQL"): an INSERT of :records records in :bytes bytes, fenced by
-- the shop's epoch with a key-share lock on the shop's row, one commit
-- each. Run with -M prepared; peer_journal and peer_shops have the shapes
-- of holdfast_journal and holdfast_shops.
INSERT INTO peer_journal(shop, first_seq, records, epoch, body, chain, durable_seq)
    SELECT 'peer', nextval('peer_seq'), :records, 1, convert_to(repeat('x', :bytes), 'UTF8'), 0, 0
    FROM peer_shops WHERE shop = 'peer' AND epoch = 1 FOR KEY SHARE;

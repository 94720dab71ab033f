-- bench/peer-pg-journal-schema.sql - the tables bench/peer-pg-journal.sql
-- appends to: holdfast_journal's and holdfast_shops's shapes, apart from
-- them so that the servers' own shops are not touched.
CREATE TABLE peer_shops (shop text PRIMARY KEY, epoch bigint NOT NULL);
CREATE TABLE peer_journal (
    shop text NOT NULL, first_seq bigint NOT NULL, records integer NOT NULL,
    epoch bigint NOT NULL, body bytea NOT NULL, chain bigint NOT NULL,
    durable_seq bigint NOT NULL DEFAULT 0, PRIMARY KEY (shop, first_seq));
CREATE SEQUENCE peer_seq;
INSERT INTO peer_shops VALUES ('peer', 1);

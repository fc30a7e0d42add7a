-- An account's history (its transfers, its balance at a past instant) is found through
-- account_postings, which the writer fills in bulk, sorted, every so many transfers,
-- rather than through two indexes on transfers updated row by row (ADR 0009). Random
-- inserts into those indexes dirtied thousands of pages per commit as the table grew.
-- Transfers after indexed_through are not in it yet; readers scan that short tail.
CREATE TABLE account_postings (
    account_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (account_id, seq)
) WITHOUT ROWID;
CREATE TABLE account_postings_mark (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    indexed_through INTEGER NOT NULL
);
INSERT INTO account_postings (account_id, seq)
    SELECT debit_account_id, seq FROM transfers
    UNION ALL
    SELECT credit_account_id, seq FROM transfers
    ORDER BY 1, 2;
INSERT INTO account_postings_mark VALUES (1, COALESCE((SELECT MAX(seq) FROM transfers), 0));
DROP INDEX transfers_by_debit;
DROP INDEX transfers_by_credit;

-- taler-lite database, schema version 1.
--
-- Applied to a fresh file as migration 1 (src/store/mod.rs, which sets
-- PRAGMA user_version). Later changes are new numbered migrations there; this
-- file is not edited once released.
--
-- Conventions: keys, hashes and signatures are raw BLOBs of their exact size
-- (checked); times the server makes are microseconds since the epoch (`*_us`);
-- Taler Timestamps given by clients are seconds (`*_s`), with "never" stored as
-- 9223372036854775807.

-- Exchange: auditors (POST /management/auditors). Rows are never deleted: the
-- last change time must be remembered forever to detect replays.
CREATE TABLE auditors (
  auditor_pub BLOB PRIMARY KEY CHECK (length(auditor_pub) = 32),
  auditor_url TEXT NOT NULL,
  auditor_name TEXT NOT NULL,
  is_active INTEGER NOT NULL CHECK (is_active IN (0, 1)),
  -- validity_start or validity_end of the last accepted change.
  last_change_s INTEGER NOT NULL,
  -- The master signature of that change, kept as evidence.
  master_sig BLOB NOT NULL CHECK (length(master_sig) = 64)
);

-- Exchange: third parties allowed to POST /kyc-bulk/$EXTERN_PUB.
CREATE TABLE extern_keys (
  extern_pub BLOB PRIMARY KEY CHECK (length(extern_pub) = 32),
  name TEXT NOT NULL,
  is_active INTEGER NOT NULL CHECK (is_active IN (0, 1)),
  created_us INTEGER NOT NULL
);

-- Exchange: bulk KYC bodies, stored once per content hash. A body is staged
-- (h_body NULL) while it streams in; the commit sets its hash, or deletes it
-- when an identical body is already stored. Staged rows left by a crash are
-- deleted at start-up.
CREATE TABLE kyc_contents (
  content_id INTEGER PRIMARY KEY,
  h_body BLOB UNIQUE CHECK (h_body IS NULL OR length(h_body) = 64),
  size INTEGER NOT NULL DEFAULT 0,
  created_us INTEGER NOT NULL
);

-- The body in chunks of about 1 MiB: SQLite caps one value near 1 GB.
CREATE TABLE kyc_chunks (
  content_id INTEGER NOT NULL REFERENCES kyc_contents (content_id) ON DELETE CASCADE,
  seq INTEGER NOT NULL,
  data BLOB NOT NULL,
  PRIMARY KEY (content_id, seq)
);

-- One row per (customer, body): who uploaded it, about whom, when.
CREATE TABLE kyc_uploads (
  upload_id INTEGER PRIMARY KEY,
  content_id INTEGER NOT NULL REFERENCES kyc_contents (content_id),
  extern_pub BLOB NOT NULL REFERENCES extern_keys (extern_pub),
  -- Taler-Customer-Payto as sent, and the hash of its normalized form.
  payto TEXT NOT NULL,
  h_normalized_payto BLOB NOT NULL CHECK (length(h_normalized_payto) = 32),
  h_body BLOB NOT NULL CHECK (length(h_body) = 64),
  content_type TEXT NOT NULL,
  size INTEGER NOT NULL,
  uploaded_us INTEGER NOT NULL,
  UNIQUE (h_normalized_payto, h_body)
);
CREATE INDEX kyc_uploads_by_content ON kyc_uploads (content_id);

-- Bank: prepared-transfer registrations. One row per authorization key; a row
-- whose expiration has passed is treated as absent everywhere and is
-- overwritten by the next registration of that key. Derived subjects are
-- unique by constraint; an expired holder's subjects are cleared (set NULL)
-- before a new registration takes them.
CREATE TABLE registrations (
  registration_id INTEGER PRIMARY KEY,
  authorization_pub BLOB NOT NULL UNIQUE CHECK (length(authorization_pub) = 32),
  account_pub BLOB NOT NULL CHECK (length(account_pub) = 32),
  type TEXT NOT NULL CHECK (type IN ('reserve', 'kyc')),
  recurrent INTEGER NOT NULL CHECK (recurrent IN (0, 1)),
  credit_amount TEXT NOT NULL,
  -- As sent, and normalized (what is compared).
  credit_account TEXT NOT NULL,
  authorization_sig BLOB NOT NULL CHECK (length(authorization_sig) = 64),
  short_subject TEXT UNIQUE,
  qr_reference TEXT UNIQUE,
  -- The RegistrationResponse as sent, so that a replay is answered byte for byte.
  response TEXT NOT NULL,
  created_us INTEGER NOT NULL,
  last_change_us INTEGER NOT NULL,
  expiration_s INTEGER NOT NULL,
  -- Set when a one-shot registration has been credited.
  used_us INTEGER
);
CREATE INDEX registrations_by_account_pub ON registrations (account_pub);

-- Bank: the wire-gateway simulation's incoming transfers, credited or bounced.
CREATE TABLE incoming_transfers (
  row_id INTEGER PRIMARY KEY,
  date_us INTEGER NOT NULL,
  amount TEXT NOT NULL,
  debit_account TEXT NOT NULL,
  credit_account TEXT NOT NULL,
  -- The subject text for add-incoming-subject; NULL for add-mapped.
  subject TEXT,
  status TEXT NOT NULL CHECK (status IN ('credited', 'bounced')),
  type TEXT CHECK (type IN ('RESERVE', 'KYCAUTH')),
  account_pub BLOB CHECK (account_pub IS NULL OR length(account_pub) = 32),
  authorization_pub BLOB CHECK (authorization_pub IS NULL OR length(authorization_pub) = 32),
  registration_id INTEGER,
  bounce_reason TEXT,
  CHECK ((status = 'credited') = (type IS NOT NULL AND account_pub IS NOT NULL))
);
-- Reserve keys are single-use: never credited twice, whatever the path.
CREATE UNIQUE INDEX incoming_reserve_once ON incoming_transfers (account_pub)
  WHERE status = 'credited' AND type = 'RESERVE';

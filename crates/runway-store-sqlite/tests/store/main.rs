//! Integration tests of the SQLite store, in one binary (it links once).
//!
//! * `conformance` runs the backend-agnostic suite from `runway-conformance`, once
//!   on a private in-memory database per case and once on a file per case, so the
//!   WAL file path (several real connections) is exercised too.
//! * `sqlite` covers what only this backend has: the file, WAL mode, migrations and
//!   transactional rollback.
//! * `files` checks who may read the database files.

mod conformance;
mod files;
mod sqlite;

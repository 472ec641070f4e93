//! The suite must expand and pass in a crate other than a backend's own, exactly
//! as a backend will use it. SQLite in memory is the cheapest real backend.

runway_conformance::conformance_suite!(async {
    runway_store_sqlite::open_in_memory().expect("open an in-memory store")
});

//! The backend-agnostic conformance suite, on SQLite.
//!
//! Run twice: on a private in-memory database per case (fast, shared-cache
//! connections) and on a file per case (WAL, the production configuration, with
//! the writer and pooled readers as separate connections to the file).

mod in_memory {
    runway_conformance::conformance_suite!(async {
        runway_store_sqlite::open_in_memory().expect("open an in-memory store")
    });
}

mod on_disk {
    runway_conformance::conformance_suite!(
        async {
            let dir = tempfile::tempdir().expect("create a temp dir");
            let store = runway_store_sqlite::open_data_dir(dir.path()).expect("open a store");
            // The store first, so it closes before the directory is removed.
            (store, dir)
        },
        |fixture| fixture.0.clone()
    );
}

-- The audit log's filters (actor, action, subject): each has an index ending in
-- the id, so a filtered listing is a keyset seek on that index, newest first,
-- like the unfiltered one on the primary key. Time ranges are id ranges (ids are
-- ULIDs, stamped when the event is made) checked against `at` exactly.
CREATE INDEX audit_events_by_subject ON audit_events (subject, id) WHERE subject IS NOT NULL;
CREATE INDEX audit_events_by_actor ON audit_events (actor_id, id) WHERE actor_id IS NOT NULL;
CREATE INDEX audit_events_by_action ON audit_events (action, id);

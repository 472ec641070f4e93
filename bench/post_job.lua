-- wrk script for the `POST /api/v1/jobs` benchmark: every request creates one job.
-- The Authorization header is added on the wrk command line (-H).
wrk.method = "POST"
wrk.body = '{"name":"bench","script":"echo hi"}'
wrk.headers["Content-Type"] = "application/json"

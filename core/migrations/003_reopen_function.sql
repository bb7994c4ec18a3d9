-- Reopening a requeued dead task (RecordStore.reopen), as one function that runs with
-- its owner's rights (SECURITY DEFINER), like hp_mark_cancelled: gateways requeue dead
-- letters but may only read the tables (docs/security.md). It can only move a `dead`
-- record back to `enqueued`. Returns whether it did.
CREATE FUNCTION hp_reopen_task(p_id text) RETURNS boolean
LANGUAGE sql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
    WITH reopened AS (
        UPDATE tasks SET status = 'enqueued', status_rank = 0, attempts = 0,
            result = NULL, error = NULL, started_at = NULL, finished_at = NULL,
            updated_at = now()
        WHERE id = p_id AND status = 'dead'
        RETURNING 1
    )
    SELECT count(*) = 1 FROM reopened;
$$;

-- Recording a cancellation, as one function that runs with its owner's rights
-- (SECURITY DEFINER). Gateways cancel tasks but may only read the tables
-- (docs/security.md): through this function their login can move a task that has not
-- started (status_rank 0, or no record yet) to `cancelled`, and nothing else.
-- Returns the task's status afterwards.
CREATE FUNCTION hp_mark_cancelled(
    p_id text, p_partition_key text, p_partition integer, p_region text, p_now timestamptz
) RETURNS text
LANGUAGE sql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
    INSERT INTO tasks AS t (id, partition_key, partition, region, kind, status,
                            status_rank, finished_at)
    VALUES (p_id, p_partition_key, p_partition, p_region, '', 'cancelled', 3, p_now)
    ON CONFLICT (id) DO UPDATE SET status = 'cancelled', status_rank = 3,
        finished_at = p_now, updated_at = now()
    WHERE t.status_rank < 1;
    SELECT status FROM tasks WHERE id = p_id;
$$;

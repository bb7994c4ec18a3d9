-- The seed's schema (tasks, attempts), extended for homeport.
-- status moves forward only: status_rank 0 enqueued, 1 running/retrying,
-- 3 succeeded/dead/cancelled (final). Writers upsert with a rank check.
CREATE TABLE tasks (
    id            text PRIMARY KEY,
    partition_key text NOT NULL,
    partition     integer NOT NULL,
    region        text NOT NULL,
    kind          text NOT NULL,
    payload       bytea,
    scheduled_at  timestamptz,
    epoch         bigint NOT NULL DEFAULT 0,
    status        text NOT NULL,
    status_rank   smallint NOT NULL,
    attempts      integer NOT NULL DEFAULT 0,
    result        bytea,
    error         text,
    enqueued_at   timestamptz,
    started_at    timestamptz,
    finished_at   timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tasks_key_idx ON tasks (partition_key);
CREATE INDEX tasks_status_idx ON tasks (status) WHERE status_rank < 3;

CREATE TABLE attempts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id     text NOT NULL,
    attempt     integer NOT NULL,
    entry_id    text NOT NULL,
    worker      text NOT NULL,
    region      text NOT NULL,
    partition   integer NOT NULL,
    status      text NOT NULL,
    duplicate   boolean NOT NULL DEFAULT false,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz,
    error_log   text
);
CREATE INDEX attempts_task_idx ON attempts (task_id);

-- Paused queues: colonies claim nothing from a queue named here (its jobs stay Enqueued, in order).

CREATE TABLE "{p}queue_pause" (
    queue TEXT NOT NULL PRIMARY KEY,
    paused_at INTEGER NOT NULL,
    reason TEXT
);

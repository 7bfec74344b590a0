"""The stream worker: per-student state in Redis, batched incremental inference, alerts."""

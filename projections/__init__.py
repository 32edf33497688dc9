"""Read models in PostgreSQL and the webhook fan-out, fed by the profile topics."""

"""Business logic: every write a person, a client or a worker makes goes through here."""

"""The support desk: which channels the bot answers in and how, hand-over to a person, saving a person's answer as
curated knowledge, and the report of what the knowledge base cannot answer. Platform-free, like the rest of the
core; the storage lives in :mod:`bot.storage.desk`."""

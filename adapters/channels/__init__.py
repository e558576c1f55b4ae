"""Channel senders: one per channel, each returning an outcome instead of raising."""

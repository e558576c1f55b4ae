-- Events are claimed only inside the transaction that decides them, never under a
-- lease any more: an event an earlier version left 'claimed' (through its claim_events
-- API) is pending again, so that it is decided once like any other.
UPDATE events SET status = 'pending', claimed_by = NULL, lease_until = NULL
WHERE status = 'claimed';

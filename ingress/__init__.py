"""Store webhooks in: verified, kept exactly as sent, on the raw topics (acks=all)."""

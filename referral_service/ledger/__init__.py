"""The time credit ledger: members, offers and requests, exchanges (DESIGN §5)."""

"""Who is calling: SMART Backend Services clients, access tokens, scopes."""

"""Time banks as a directory: catchment, offers, capacity, SLA (DESIGN §4)."""

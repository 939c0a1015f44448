"""The audit trail: every read, search, write, share, consent decision and token issue is one
`audit_event` row (who, which resource ids, why, how it ended; never health data), committed with
the action it records, and chained within about a second into a SHA-256 hash chain
(`audit_chain`, by the sealer: sealer.py) that `spis audit verify` walks.

Append-only is enforced twice: the repository has no update or delete (but the sealer's, of queue
rows it has just chained), and the migrations install triggers that refuse UPDATE and DELETE on
audit_event and audit_chain and taking an unchained event off the queue. In production the application also connects as a role
that owns no table and has no UPDATE or DELETE here (`spis migrate` with SPIS_APP_DATABASE_ROLE
sets it up; an owner could disable the triggers).

The chain shows that rows were edited, removed or reordered; it cannot show a chain rewritten from
some row onward, or the newest rows cut off, unless the head is kept elsewhere: `anchor.py` signs
it (`spis audit anchor`) and `verify.verify(anchor=...)` checks against it.
"""

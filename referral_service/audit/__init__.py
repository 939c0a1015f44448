"""The audit trail: every read, search, write, share, consent decision and token issue is one
`audit_event` row (who, which resource ids, why, how it ended; never health data), appended to a
SHA-256 hash chain that `spis audit verify` walks.

Append-only is enforced twice: the repository has no update or delete, and the migration installs
triggers that refuse UPDATE and DELETE. In production also take the rights away from the
application's database role, and let another role own the table (an owner can disable triggers):

    REVOKE UPDATE, DELETE, TRUNCATE ON audit_event FROM spis_app;
    GRANT SELECT, INSERT ON audit_event TO spis_app;

The chain shows that rows were edited, removed or reordered; it cannot show that the newest rows
were cut off unless the head (`repository.head`) is kept somewhere else and given back to
`service.verify(anchor=...)`.
"""

"""People who use the web workspace: brokers, practice staff and analysts at one organisation each.

Separate from the SMART clients (`auth/`): a person signs in with a password and a TOTP second
factor and holds a server-side session; the pages act for them with a Principal of their
organisation.
"""

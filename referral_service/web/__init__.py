"""The web workspace: server-rendered pages for time bank brokers and practice staff (issue 9).

Part of the edge, like `fhir/`: the pages call the domain services directly with the signed-in
person's Principal, so consent, tenancy and audit apply exactly as they do over FHIR.
"""

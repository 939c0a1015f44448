"""The FHIR resource store: current versions, history and search index, tenant-filtered."""

"""The /fhir REST surface: routing, content negotiation, CapabilityStatement, search plumbing."""

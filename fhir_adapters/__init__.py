"""Pure FHIR R4 translation for SPIS: parse, validate, check, index. No DB, no HTTP.

The only package that imports ``fhir.resources`` (always the R4B models: the root package is R5).
"""

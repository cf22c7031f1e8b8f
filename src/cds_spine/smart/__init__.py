"""The pathway timeline: a SMART on FHIR app served by the service (routes.py), a third door into the same reader and pathway."""

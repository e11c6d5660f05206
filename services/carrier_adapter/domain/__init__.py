"""carrier-adapter domain: canonical carrier shapes and pure rules, no I/O.

- model: dataclasses and enums every connector speaks;
- errors: carrier failures with retryable / maybe-committed facts;
- status_table, service_table: the per-carrier code tables (data files) and their lookup;
- code_mapping: operators' versioned code mappings and re-normalizing a scan left UNKNOWN;
- normalize: raw carrier scans → canonical TrackingScans, reporting unmapped codes;
- payload_log: the raw payload record, redaction and bounded retention;
- polling: which tracking numbers are due for a poll;
- connector: the port every carrier connector implements (adapters.carriers);
- events: what the service announces (TrackingUpdated; UnmappedCode; CodeMapped).
"""

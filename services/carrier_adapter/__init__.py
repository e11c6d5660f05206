"""carrier-adapter: talks to carriers (karrio connectors plus a built-in sandbox carrier).

Layout: `domain` holds the canonical dataclasses, code tables, payload-log retention and polling
rules (no I/O); `connector` is the interface every carrier implements; `carriers/<code>/` holds
one folder per carrier (mapping, transport, data tables); `reliability` holds timeouts, retries
and the circuit breaker; `api` translates between the protobuf contracts and the domain.
"""

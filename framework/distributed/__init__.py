"""Scale out over Redis Streams: a venue gateway process and strategy processes on a shared bus.

`gateway.Gateway` runs next to an `Engine` that owns one venue account (sessions, books, order
manager, journal, risk) and publishes its normalized events to Redis; `remote.RemoteRuntime`
gives strategies in another process (or host) a `StrategyContext` over those streams, so the
`Strategy` API is unchanged. `codec` is the exact wire encoding (Decimals as strings, never
floats); `redis` the connection settings (ACL user, password by env var name, TLS) and keys.
The in-process engine stays the default; nothing in the core imports this package.
"""

"""Exchange (liên thông): gateways that carry signed, classification-aware calls between
agencies through the platform hierarchy.

Pure core: :mod:`protocol` (REST request format, uniform error codes), :mod:`envelope`
(JWS claims, request/response binding, hop receipts), :mod:`e2e` (pluggable end-to-end
cipher suites, streaming AEAD), :mod:`replay` (freshness window), :mod:`policy`
(classification and access rules), :mod:`routing` (platform hierarchy). Adapters: the
gateway process (:mod:`server`) on its own HTTP/1.1 server and client (:mod:`httpserver`,
:mod:`httpclient`), the monitoring store and the CLI.
"""

"""The versions, in a leaf module so that every layer may show them."""

# This package's own release.
__version__ = "0.1.0"

# The release of Ollama whose API this server implements: what `/api/version` and
# `trio-ollama --version` report, because clients gate features on it (Codex's `--oss` mode
# requires 0.13.4 or newer for `/v1/responses`). It is v0.14.0 because that release is the
# first with every endpoint served here (`/v1/responses` came in v0.13.3, `/v1/messages` in
# v0.14.0) and it has none that this server lacks, but for ollama.com's account routes
# (`/api/me`, `/api/signout`); the first that it lacks, `/api/status`, came in v0.16.2.
# To keep it true: when the server gains an endpoint or a request or reply shape that a later
# Ollama release introduced, raise this to that release, but only once nothing Ollama shipped
# up to it (`server/routes.go`'s routes, the middleware's accepted fields) is missing here;
# a client that reads a higher number will use what that release has.
OLLAMA_API_VERSION = "0.14.0"

# The response header that names this package and its release on every answer (the
# `/api/version` body keeps Ollama's one-field shape, which clients parse).
VERSION_HEADER = "Trio-Ollama-Version"

"""HTTP API: FastAPI app factory, routes, auth dependencies, problem+json errors."""
